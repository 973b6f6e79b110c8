"""The repair flow of a repair or warranty-claim ticket.

reported → inspecting → repairing → awaiting_acceptance → accepted, and a customer who rejects
the result sends it back to repairing. Findings, parts and labour are recorded; the customer
is charged nothing when the unit is under warranty (the cost is still recorded).

Completing the repair gives the customer a secret link (``ticket.repair_completed``) to accept
or reject it on a page: one answer per completion, expiring; a rejected and re-completed repair
gets a new link and the old one stops working.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.service_desk.domain.survey import SurveyLink
from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import ContactInfo, TicketRepairCompleted


class AcceptanceLinkUsed(DomainError):
    """The customer already answered through this link (or the repair moved on)."""


class AcceptanceLinkExpired(DomainError):
    """The link is past its validity."""


class RepairStatus(StrEnum):
    REPORTED = "reported"
    INSPECTING = "inspecting"
    REPAIRING = "repairing"
    AWAITING_ACCEPTANCE = "awaiting_acceptance"
    ACCEPTED = "accepted"


@dataclass(frozen=True)
class Part:
    sku: str
    description: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(eq=False)
class Repair(Aggregate):
    id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_number: str
    customer_id: str
    serial_number: str | None
    under_warranty: bool
    currency: str
    created_at: datetime
    updated_at: datetime
    status: RepairStatus = RepairStatus.REPORTED
    findings: str | None = None
    parts: tuple[Part, ...] = ()
    labour_cost: Decimal = Decimal("0.00")
    rejections: list[str] = field(default_factory=list)
    accepted_at: datetime | None = None
    accepted_by: str | None = None  # "customer" through the link, else the agent who recorded it
    # The customer's acceptance link of the latest completion (hash only).
    acceptance_token_hash: str | None = None
    acceptance_expires_at: datetime | None = None

    @property
    def parts_cost(self) -> Decimal:
        return sum((p.amount for p in self.parts), Decimal("0.00"))

    @property
    def total_cost(self) -> Decimal:
        return self.parts_cost + self.labour_cost

    @property
    def charged_amount(self) -> Decimal:
        """What the customer pays: nothing under warranty."""
        return Decimal("0.00") if self.under_warranty else self.total_cost

    def _move(self, to: RepairStatus, now: datetime, *allowed: RepairStatus) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"a repair that is {self.status.value.replace('_', ' ')} cannot go to {to.value}")
        self.status, self.updated_at = to, now
        self.version += 1

    def inspect(self, now: datetime) -> None:
        self._move(RepairStatus.INSPECTING, now, RepairStatus.REPORTED)

    def start_repair(self, *, findings: str, parts: tuple[Part, ...], labour_cost: Decimal, now: datetime) -> None:
        if not findings.strip():
            raise DomainError("record what the inspection found")
        if any(p.quantity <= 0 or p.unit_price < 0 for p in parts) or labour_cost < 0:
            raise DomainError("parts need a positive quantity, and costs cannot be negative")
        self._move(RepairStatus.REPAIRING, now, RepairStatus.INSPECTING)
        self.findings, self.parts, self.labour_cost = findings, parts, labour_cost

    def complete(self, now: datetime, *, link: SurveyLink | None = None, contact: ContactInfo | None = None) -> None:
        """Repaired: the customer is asked to accept it, through ``link`` if given."""
        self._move(RepairStatus.AWAITING_ACCEPTANCE, now, RepairStatus.REPAIRING)
        self.acceptance_token_hash = link.token_hash if link else None
        self.acceptance_expires_at = link.expires_at if link else None
        self.record(
            TicketRepairCompleted(
                ticket_id=self.ticket_id,
                ticket_number=self.ticket_number,
                repair_id=self.id,
                customer_id=self.customer_id,
                contact=contact,
                under_warranty=self.under_warranty,
                currency=self.currency,
                charged_amount=self.charged_amount,
                link=link.url if link else None,
                expires_at=link.expires_at if link else None,
                completed_at=now,
            )
        )

    def accept(self, now: datetime, *, by: str | None = None) -> None:
        self._move(RepairStatus.ACCEPTED, now, RepairStatus.AWAITING_ACCEPTANCE)
        self.accepted_at, self.accepted_by = now, by

    def check_link_open(self, now: datetime) -> None:
        """The customer's link may still be answered (else the reason, raised)."""
        if self.status != RepairStatus.AWAITING_ACCEPTANCE:
            raise AcceptanceLinkUsed("this repair was already accepted or rejected")
        if self.acceptance_expires_at is not None and now >= self.acceptance_expires_at:
            raise AcceptanceLinkExpired("the acceptance link has expired")

    def customer_answer(self, *, accepted: bool, reason: str | None, now: datetime) -> None:
        """The customer's answer through their link: accepted, or rejected (why) back to repairing."""
        self.check_link_open(now)
        if accepted:
            self.accept(now, by="customer")
        else:
            self.reject((reason or "").strip(), now)

    def reject(self, reason: str, now: datetime) -> None:
        if not reason.strip():
            raise DomainError("say why the customer rejects the repair")
        self._move(RepairStatus.REPAIRING, now, RepairStatus.AWAITING_ACCEPTANCE)
        self.rejections.append(reason)
