"""The account (customer) aggregate.

An account comes from converting a qualified lead (``domain/conversion.py``) or from
``contract.signed`` for a customer the CRM did not know. It is classified (*signed, letter of
intent, key, progressing, potential, tracking*) and tiered: a high-value account is due a
follow-up every week, a normal one every month (``next_follow_up_at``, a durable timer).
``team`` and ``region`` scope who sees it (a manager their team's, a director their region's).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain import Aggregate, DomainError
from shared.events import AccountClassified, AccountFollowUpDue, AccountTierChanged


class AccountTier(StrEnum):
    HIGH_VALUE = "high_value"
    NORMAL = "normal"

    @property
    def follow_up_interval(self) -> timedelta:
        """High value: weekly follow-up; normal: monthly (30 days)."""
        return timedelta(days=7) if self is AccountTier.HIGH_VALUE else timedelta(days=30)


class AccountClassification(StrEnum):
    SIGNED = "signed"
    LETTER_OF_INTENT = "letter_of_intent"
    KEY = "key"
    PROGRESSING = "progressing"
    POTENTIAL = "potential"
    TRACKING = "tracking"


@dataclass(eq=False)
class Account(Aggregate):
    id: uuid.UUID
    customer_id: str
    name: str
    owner_id: str
    created_at: datetime
    classification: AccountClassification = AccountClassification.TRACKING
    region: str | None = None
    signed_contracts: int = 0
    tier: AccountTier = AccountTier.NORMAL
    team: str | None = None
    lead_id: uuid.UUID | None = None  # the lead it was converted from
    next_follow_up_at: datetime | None = None

    def classify(self, classification: AccountClassification, *, reason: str) -> None:
        if classification == self.classification:
            return
        previous, self.classification = self.classification, classification
        self.record(
            AccountClassified(
                account_id=str(self.id),
                customer_name=self.name,
                classification=classification.value,
                previous_classification=previous.value,
                reason=reason,
            )
        )

    def contract_signed(self, contract_number: str) -> None:
        self.signed_contracts += 1
        self.classify(AccountClassification.SIGNED, reason=f"contract {contract_number} signed")

    def set_tier(self, tier: AccountTier, *, now: datetime, by: str) -> None:
        """A new tier restarts the follow-up clock at its interval from ``now``."""
        if tier == self.tier:
            raise DomainError(f"the account is already {tier.value}")
        previous, self.tier = self.tier, tier
        self.next_follow_up_at = now + tier.follow_up_interval
        self.record(
            AccountTierChanged(
                account_id=str(self.id),
                tier=tier.value,
                previous_tier=previous.value,
                changed_by=by,
                next_follow_up_at=self.next_follow_up_at,
            )
        )

    def follow_up_due(self, due_at: datetime) -> bool:
        """The follow-up reminder of ``due_at`` fell due: announce it and schedule the next one.

        False when the reminder is stale (the tier changed since it was scheduled)."""
        if self.next_follow_up_at is None or self.next_follow_up_at != due_at:
            return False
        self.next_follow_up_at = due_at + self.tier.follow_up_interval
        self.record(
            AccountFollowUpDue(
                account_id=str(self.id),
                customer_name=self.name,
                owner_id=self.owner_id,
                tier=self.tier.value,
                due_at=due_at,
                next_follow_up_at=self.next_follow_up_at,
            )
        )
        return True
