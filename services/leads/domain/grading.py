"""A / B / C grading from budget, decision timeframe and need fit, by rules that are data.

The rules live in ``services/leads/grading_rules.json`` (versioned: every graded lead records
the version that graded it). A rule set is an ordered list of rules; the first whose every
condition holds gives the grade, else the default. Conditions:

- ``min_budget``: a decimal string; the lead's budget must be at least this (a lead without a
  budget fails it);
- ``timeframes``: the decision timeframe must be one of these;
- ``need_fits``: the need fit must be one of these.

A condition left out always holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any


class Grade(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class DecisionTimeframe(StrEnum):
    WITHIN_1_MONTH = "within_1_month"
    WITHIN_3_MONTHS = "within_3_months"
    WITHIN_6_MONTHS = "within_6_months"
    OVER_6_MONTHS = "over_6_months"
    UNKNOWN = "unknown"


class NeedFit(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class GradingInputs:
    budget: Decimal | None = None
    timeframe: DecisionTimeframe = DecisionTimeframe.UNKNOWN
    need_fit: NeedFit = NeedFit.UNKNOWN


@dataclass(frozen=True, slots=True)
class GradingRule:
    grade: Grade
    min_budget: Decimal | None = None
    timeframes: frozenset[DecisionTimeframe] | None = None
    need_fits: frozenset[NeedFit] | None = None

    def holds(self, inputs: GradingInputs) -> bool:
        if self.min_budget is not None and (inputs.budget is None or inputs.budget < self.min_budget):
            return False
        if self.timeframes is not None and inputs.timeframe not in self.timeframes:
            return False
        return self.need_fits is None or inputs.need_fit in self.need_fits


@dataclass(frozen=True, slots=True)
class GradingRules:
    version: int
    rules: tuple[GradingRule, ...]
    default: Grade = Grade.C

    def grade(self, inputs: GradingInputs) -> Grade:
        for rule in self.rules:
            if rule.holds(inputs):
                return rule.grade
        return self.default

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradingRules:
        """Parse and check a rule set; a malformed one is a ``ValueError`` naming the problem."""
        try:
            version = data["version"]
            if not isinstance(version, int) or version < 1:
                raise ValueError("version must be a positive integer")
            rules = []
            for raw in data["rules"]:
                unknown = set(raw) - {"grade", "min_budget", "timeframes", "need_fits"}
                if unknown:
                    raise ValueError(f"unknown rule fields {sorted(unknown)}")
                rules.append(
                    GradingRule(
                        grade=Grade(raw["grade"]),
                        min_budget=Decimal(str(raw["min_budget"])) if "min_budget" in raw else None,
                        timeframes=frozenset(map(DecisionTimeframe, raw["timeframes"]))
                        if "timeframes" in raw
                        else None,
                        need_fits=frozenset(map(NeedFit, raw["need_fits"])) if "need_fits" in raw else None,
                    )
                )
            return cls(version=version, rules=tuple(rules), default=Grade(data.get("default", "C")))
        except (KeyError, TypeError, InvalidOperation) as exc:
            raise ValueError(f"malformed grading rules: {exc!r}") from exc

    @classmethod
    def load(cls, path: Path) -> GradingRules:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
