"""Support agents and their groups (skills), and who gets the next ticket."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from shared.domain import Aggregate


@dataclass(eq=False)
class Agent(Aggregate):
    """An agent is identified by their token's subject; ``capacity`` is how many open tickets they take."""

    id: str
    name: str
    groups: tuple[str, ...] = ()
    capacity: int = 10
    on_duty: bool = True
    created_at: datetime | None = None

    def update(self, *, name: str, groups: Iterable[str], capacity: int, on_duty: bool) -> None:
        self.name, self.groups, self.capacity, self.on_duty = name, tuple(dict.fromkeys(groups)), capacity, on_duty
        self.version += 1


def choose_agent(candidates: Iterable[Agent], open_tickets: Mapping[str, int], group: str) -> Agent | None:
    """The on-duty agent of ``group`` with the fewest open tickets relative to capacity.

    Full agents (open >= capacity) and off-duty ones are skipped; ties go to the agent with
    more spare room, then by id, so the choice is deterministic.
    """
    best: tuple[Fraction, int, str] | None = None
    chosen = None
    for agent in candidates:
        if not agent.on_duty or group not in agent.groups or agent.capacity <= 0:
            continue
        load = open_tickets.get(agent.id, 0)
        if load >= agent.capacity:
            continue
        key = (Fraction(load, agent.capacity), -(agent.capacity - load), agent.id)
        if best is None or key < best:
            best, chosen = key, agent
    return chosen
