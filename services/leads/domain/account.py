"""The account (customer) aggregate: thin platform version.

Here an account only learns from ``contract.signed`` that it is *signed*; the leads issue
adds capture, de-duplication, ownership, tiers and the follow-up rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain import Aggregate
from shared.events import AccountClassified


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
