"""The repair flow of a repair or warranty-claim ticket.

reported → inspecting → repairing → awaiting_acceptance → accepted, and a customer who rejects
the result sends it back to repairing. Findings, parts and labour are recorded; the customer
is charged nothing when the unit is under warranty (the cost is still recorded).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.domain import Aggregate, DomainError, InvalidTransition


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

    def complete(self, now: datetime) -> None:
        self._move(RepairStatus.AWAITING_ACCEPTANCE, now, RepairStatus.REPAIRING)

    def accept(self, now: datetime) -> None:
        self._move(RepairStatus.ACCEPTED, now, RepairStatus.AWAITING_ACCEPTANCE)
        self.accepted_at = now

    def reject(self, reason: str, now: datetime) -> None:
        if not reason.strip():
            raise DomainError("say why the customer rejects the repair")
        self._move(RepairStatus.REPAIRING, now, RepairStatus.AWAITING_ACCEPTANCE)
        self.rejections.append(reason)
