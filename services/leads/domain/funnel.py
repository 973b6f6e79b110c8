"""The sales funnel: how many opportunities stand in each stage and what they are worth, how
many reached each stage, the conversion from each stage to the next, the average time spent in
a stage, and the win rate (won / closed)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.leads.domain.opportunity import FUNNEL_STAGES, HUNDRED, Stage
from shared.money import money


@dataclass(frozen=True, slots=True)
class StageFigures:
    stage: Stage
    count: int  # standing in the stage now
    value: Decimal  # their amount
    reached: int  # ever entered the stage
    conversion_pct: Decimal | None  # of those that reached it, the share that reached the next stage
    avg_hours_in_stage: Decimal | None  # over the stays that ended


@dataclass(frozen=True, slots=True)
class Funnel:
    stages: tuple[StageFigures, ...]
    win_rate_pct: Decimal | None
    won_value: Decimal
    lost_value: Decimal


def _pct(part: int, whole: int) -> Decimal | None:
    return money(Decimal(part) * HUNDRED / whole) if whole else None


def funnel(
    current: dict[str, tuple[int, Decimal]], reached: dict[str, int], avg_seconds: dict[str, float | None]
) -> Funnel:
    figures = []
    for i, stage in enumerate((*FUNNEL_STAGES, Stage.LOST)):
        count, value = current.get(stage.value, (0, Decimal(0)))
        here = reached.get(stage.value, 0)
        following = FUNNEL_STAGES[i + 1] if i + 1 < len(FUNNEL_STAGES) else None
        seconds = avg_seconds.get(stage.value)
        figures.append(
            StageFigures(
                stage=stage,
                count=count,
                value=money(value),
                reached=here,
                conversion_pct=_pct(reached.get(following.value, 0), here) if following else None,
                avg_hours_in_stage=None if seconds is None else money(Decimal(str(seconds)) / 3600),
            )
        )
    won, lost = current.get(Stage.WON.value, (0, Decimal(0))), current.get(Stage.LOST.value, (0, Decimal(0)))
    return Funnel(
        stages=tuple(figures),
        win_rate_pct=_pct(won[0], won[0] + lost[0]),
        won_value=money(won[1]),
        lost_value=money(lost[1]),
    )
