"""The opportunity aggregate: a deal in the sales funnel.

Stages: qualification → needs analysis → proposal → negotiation → won / lost. An open
opportunity moves forward one stage at a time or back to any earlier open stage; it can be
lost from any open stage (with a reason) and won only from negotiation, on an accepted quote
(whose total becomes the amount). Won and lost are final. Each stage has a default probability;
the rep may set another while the opportunity is open. Weighted value = amount * probability.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import ContactInfo, ContractLine, OpportunityLost, OpportunityStageChanged, OpportunityWon
from shared.money import money

HUNDRED = Decimal(100)


class Stage(StrEnum):
    QUALIFICATION = "qualification"
    NEEDS_ANALYSIS = "needs_analysis"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    WON = "won"
    LOST = "lost"

    @property
    def is_open(self) -> bool:
        return self not in (Stage.WON, Stage.LOST)

    @property
    def default_probability(self) -> Decimal:
        return DEFAULT_PROBABILITY[self]


OPEN_STAGES = (Stage.QUALIFICATION, Stage.NEEDS_ANALYSIS, Stage.PROPOSAL, Stage.NEGOTIATION)
FUNNEL_STAGES = (*OPEN_STAGES, Stage.WON)
DEFAULT_PROBABILITY = {
    Stage.QUALIFICATION: Decimal("10.00"),
    Stage.NEEDS_ANALYSIS: Decimal("25.00"),
    Stage.PROPOSAL: Decimal("50.00"),
    Stage.NEGOTIATION: Decimal("75.00"),
    Stage.WON: Decimal("100.00"),
    Stage.LOST: Decimal("0.00"),
}


@dataclass(frozen=True, slots=True)
class WinningQuote:
    """What the accepted quote contributes to ``opportunity.won`` (see ``domain/quote.py``)."""

    id: uuid.UUID
    number: str
    currency: str
    lines: tuple[ContractLine, ...]
    subtotal_amount: Decimal
    discount_pct: Decimal
    total_amount: Decimal
    payment_terms: str | None = None
    delivery_address: str | None = None


@dataclass(eq=False)
class Opportunity(Aggregate):
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    owner_id: str
    amount: Decimal
    currency: str
    created_at: datetime
    stage: Stage = Stage.QUALIFICATION
    probability: Decimal = field(default_factory=lambda: Stage.QUALIFICATION.default_probability)
    expected_close_date: date | None = None
    contact_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = None
    source: str | None = None  # the lead's source, for the funnel
    team: str | None = None
    region: str | None = None
    stage_entered_at: datetime | None = None
    lost_reason: str | None = None
    accepted_quote_id: uuid.UUID | None = None
    closed_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.stage_entered_at is None:
            self.stage_entered_at = self.created_at

    @property
    def weighted_value(self) -> Decimal:
        return money(self.amount * self.probability / HUNDRED)

    def require_open(self, action: str) -> None:
        if not self.stage.is_open:
            raise InvalidTransition(f"cannot {action}: the opportunity is {self.stage.value}")

    def update(
        self,
        *,
        name: str | None = None,
        amount: Decimal | None = None,
        currency: str | None = None,
        probability: Decimal | None = None,
        expected_close_date: date | None = None,
    ) -> None:
        self.require_open("change it")
        if probability is not None and not (0 <= probability <= 100):
            raise DomainError("probability is a percentage between 0 and 100")
        if amount is not None and self.accepted_quote_id is not None:
            raise DomainError("the amount follows the accepted quote")
        self.name = name if name is not None else self.name
        self.amount = amount if amount is not None else self.amount
        self.currency = currency if currency is not None else self.currency
        self.probability = money(probability) if probability is not None else self.probability
        if expected_close_date is not None:
            self.expected_close_date = expected_close_date
        self.version += 1  # a change without an event still moves the ETag

    def move_to(self, stage: Stage, *, by: str, now: datetime) -> None:
        """Forward one stage, or back to an earlier open stage."""
        self.require_open("change its stage")
        if stage in (Stage.WON, Stage.LOST):
            raise InvalidTransition(f"use the {stage.value} action to close an opportunity")
        current, target = OPEN_STAGES.index(self.stage), OPEN_STAGES.index(stage)
        if target == current or target > current + 1:
            raise InvalidTransition(
                f"an opportunity in {self.stage.value} moves forward one stage at a time"
                f" (to {OPEN_STAGES[current + 1].value if current + 1 < len(OPEN_STAGES) else 'won'}) or back"
            )
        self._enter(stage, by=by, now=now)

    def _enter(self, stage: Stage, *, by: str, now: datetime) -> None:
        previous, self.stage = self.stage, stage
        self.probability, self.stage_entered_at = stage.default_probability, now
        self.record(
            OpportunityStageChanged(
                opportunity_id=self.id,
                account_id=self.account_id,
                owner_id=self.owner_id,
                stage=stage.value,
                previous_stage=previous.value,
                probability=self.probability,
                amount=self.amount,
                currency=self.currency,
                changed_by=by,
                changed_at=now,
            )
        )

    def lose(self, reason: str, *, by: str, now: datetime) -> None:
        self.require_open("lose it")
        if not reason.strip():
            raise DomainError("a lost opportunity needs a reason")
        previous = self.stage
        self._enter(Stage.LOST, by=by, now=now)
        self.lost_reason, self.closed_at = reason, now
        self.record(
            OpportunityLost(
                opportunity_id=self.id,
                account_id=self.account_id,
                owner_id=self.owner_id,
                previous_stage=previous.value,
                reason=reason,
                amount=self.amount,
                currency=self.currency,
                lost_by=by,
                lost_at=now,
            )
        )

    def win(
        self,
        quote: WinningQuote | None,
        *,
        customer_id: str,
        customer_name: str,
        contact: ContactInfo | None,
        by: str,
        now: datetime,
    ) -> None:
        """Won on the accepted quote: ``opportunity.won`` carries everything contract drafting needs."""
        self.require_open("win it")
        if self.stage is not Stage.NEGOTIATION:
            raise InvalidTransition(f"an opportunity is won from negotiation, not from {self.stage.value}")
        if quote is None:
            raise InvalidTransition("winning an opportunity needs an accepted quote")
        self.amount, self.currency, self.accepted_quote_id = quote.total_amount, quote.currency, quote.id
        self._enter(Stage.WON, by=by, now=now)
        self.closed_at = now
        self.record(
            OpportunityWon(
                opportunity_id=self.id,
                quote_id=quote.id,
                quote_number=quote.number,
                account_id=customer_id,
                customer_name=customer_name,
                contact=contact,
                owner_id=self.owner_id,
                region=self.region,
                currency=quote.currency,
                lines=quote.lines,
                subtotal_amount=quote.subtotal_amount,
                discount_pct=quote.discount_pct,
                total_amount=quote.total_amount,
                payment_terms=quote.payment_terms,
                delivery_address=quote.delivery_address,
                won_at=now,
            )
        )
