"""Structured payment terms: prepayment with a percentage, net N days, or instalments.

A plan checks itself (percentages add up to 100, days in order) and describes itself in the one
wording the contract document, ``contract.signed`` and the orders service read: the words
"prepayment"/"advance" mark what is due before delivery (orders parses the percentage from it).
The plan is the source of truth: free text sent beside it must restate that wording, never
replace or contradict it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from shared.domain import DomainError

HUNDRED = Decimal(100)
MAX_DAYS = 365


class PlanKind(StrEnum):
    PREPAYMENT = "prepayment"
    NET = "net"
    INSTALMENTS = "instalments"


@dataclass(frozen=True)
class Instalment:
    pct: Decimal
    due_days: int  # after signing; 0 = on signing, before delivery


@dataclass(frozen=True)
class PaymentPlan:
    kind: PlanKind
    prepayment_pct: Decimal | None = None
    net_days: int | None = None  # net days (kind net), or for the balance after a partial prepayment
    instalments: tuple[Instalment, ...] = ()

    def check(self) -> None:
        if self.net_days is not None and not 0 <= self.net_days <= MAX_DAYS:
            raise DomainError(f"net days must be between 0 and {MAX_DAYS}")
        if self.kind == PlanKind.NET:
            if self.net_days is None or self.prepayment_pct is not None or self.instalments:
                raise DomainError("net terms take net_days only")
        elif self.kind == PlanKind.PREPAYMENT:
            pct = self.prepayment_pct
            if pct is None or not 0 < pct <= HUNDRED or self.instalments:
                raise DomainError("a prepayment takes a percentage above 0 and at most 100")
            if (pct < HUNDRED) != (self.net_days is not None):
                raise DomainError("a partial prepayment needs net_days for the balance (and a full one none)")
        else:
            if len(self.instalments) < 2 or self.prepayment_pct is not None or self.net_days is not None:
                raise DomainError("instalments take two or more instalments only")
            if any(i.pct <= 0 for i in self.instalments) or sum(i.pct for i in self.instalments) != HUNDRED:
                raise DomainError("instalment percentages must be positive and add up to 100")
            days = [i.due_days for i in self.instalments]
            if days != sorted(days) or not all(0 <= d <= MAX_DAYS for d in days):
                raise DomainError(f"instalments fall due in order, between day 0 and day {MAX_DAYS}")

    def check_stated(self, text: str | None) -> None:
        """Free-text terms sent with (or against) the plan must say what the plan says."""
        if text is not None and _words(text) != _words(self.describe()):
            raise DomainError(
                f"payment_terms contradicts the payment plan, which reads '{self.describe()}': leave "
                "payment_terms out (it is set from the plan), or send payment_plan null for free-text terms"
            )

    def describe(self) -> str:
        if self.kind == PlanKind.NET:
            return f"net {self.net_days} days"
        if self.kind == PlanKind.PREPAYMENT:
            pct = _pct(self.prepayment_pct or HUNDRED)
            return f"{pct}% prepayment" + ("" if self.net_days is None else f", balance net {self.net_days} days")
        parts = [
            f"{_pct(i.pct)}% advance" if i.due_days == 0 else f"{_pct(i.pct)}% at {i.due_days} days"
            for i in self.instalments
        ]
        return "instalments: " + ", ".join(parts)


def _words(text: str) -> list[str]:
    return text.casefold().split()


def _pct(value: Decimal) -> str:
    return f"{value.normalize():f}"
