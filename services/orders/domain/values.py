"""Value objects of an order: lines, approval steps, shipments, payments, invoices (pure Python)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.money import money

HUNDRED = Decimal(100)


class OrderStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    CREDIT_HOLD = "credit_hold"
    RETURNED = "returned"  # rejected: back with its owner to amend or cancel
    AWAITING_PREPAYMENT = "awaiting_prepayment"
    RELEASED = "released"  # approved and released to fulfilment
    PARTIALLY_DELIVERED = "partially_delivered"
    DELIVERED = "delivered"
    COMPLETED = "completed"  # delivered and fully paid
    CANCELLED = "cancelled"


BEFORE_APPROVAL = frozenset({OrderStatus.PENDING_APPROVAL, OrderStatus.CREDIT_HOLD, OrderStatus.RETURNED})
# Approved and nothing shipped yet: a change needs a change request.
APPROVED_UNSHIPPED = frozenset({OrderStatus.AWAITING_PREPAYMENT, OrderStatus.RELEASED})
SHIPPABLE = frozenset({OrderStatus.RELEASED, OrderStatus.PARTIALLY_DELIVERED})
# Approved and not yet fully delivered: a change is a change request (limited by what has shipped).
CHANGEABLE_AFTER_APPROVAL = APPROVED_UNSHIPPED | SHIPPABLE
# Counted in the customer's outstanding balance for the credit check.
CREDIT_EXPOSED = frozenset(
    {
        OrderStatus.AWAITING_PREPAYMENT,
        OrderStatus.RELEASED,
        OrderStatus.PARTIALLY_DELIVERED,
        OrderStatus.DELIVERED,
    }
)


@dataclass(frozen=True)
class OrderLine:
    line_no: int
    sku: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    warranty_months: int = 0
    serial_numbers: tuple[str, ...] = ()
    discount_pct: Decimal = Decimal(0)

    @property
    def list_amount(self) -> Decimal:
        return money(self.quantity * self.unit_price)


def prepayment_pct_from_terms(terms: str) -> Decimal:
    """How much of the order the payment terms ask for before shipping.

    "100% prepayment", "30% advance, net 30", "prepaid", "cash in advance" (no percentage:
    all of it). Terms without prepayment ("net 30") ask for nothing before shipping.
    """
    text = terms.lower()
    if not re.search(r"prepay|prepaid|advance|in advance|upfront|up-front", text):
        return Decimal(0)
    match = re.search(r"(\d{1,3}(?:\.\d+)?)\s*%\s*(?:prepay|prepaid|advance|upfront|up-front|down)", text)
    if match:
        return min(Decimal(match.group(1)), HUNDRED)
    return HUNDRED


class Level(StrEnum):
    MANAGER = "sales_manager_review"
    DISCOUNT = "discount_authority"
    FINANCE = "finance"


class StepStatus(StrEnum):
    WAITING = "waiting"  # an earlier level has not decided yet
    PENDING = "pending"  # in the approver's queue
    ON_HOLD = "on_hold"  # finance level: over the credit limit
    APPROVED = "approved"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"  # the round was restarted by an amendment


@dataclass(frozen=True)
class ApprovalStep:
    """One level of one approval round, with who decided, under which policy and on what figures."""

    round: int
    level: Level
    role: str
    status: StepStatus
    change_request: bool = False
    rule: str | None = None
    decided_by: str | None = None
    decided_role: str | None = None
    decided_at: datetime | None = None
    policy_version: str | None = None
    figures: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    entered_at: datetime | None = None


@dataclass(frozen=True)
class CreditFigures:
    """What the finance level decides on: all in the order's currency."""

    credit_limit: Decimal
    outstanding_balance: Decimal
    order_amount: Decimal
    limit_source: str  # "customer" or "default"

    @property
    def exposure(self) -> Decimal:
        return self.outstanding_balance + self.order_amount

    @property
    def within_limit(self) -> bool:
        return self.exposure <= self.credit_limit

    def as_dict(self) -> dict[str, str]:
        return {
            "credit_limit": str(self.credit_limit),
            "outstanding_balance": str(self.outstanding_balance),
            "order_amount": str(self.order_amount),
            "exposure": str(self.exposure),
            "limit_source": self.limit_source,
        }


@dataclass(frozen=True)
class Amendment:
    """A change to an order. ``None`` fields stay as they are."""

    lines: tuple[OrderLine, ...] | None = None
    payment_terms: str | None = None
    payment_method: str | None = None
    delivery_address: str | None = None
    requested_delivery_date: str | None = None
    reason: str | None = None
    requested_by: str | None = None

    def fields(self) -> tuple[str, ...]:
        names = ("lines", "payment_terms", "payment_method", "delivery_address", "requested_delivery_date")
        return tuple(name for name in names if getattr(self, name) is not None)


class ShipmentStatus(StrEnum):
    RELEASED = "released"
    PICKED = "picked"
    SHIPPED = "shipped"
    DELIVERED = "delivered"


@dataclass(frozen=True)
class ShipmentItem:
    line_no: int
    quantity: Decimal
    serial_numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shipment:
    id: uuid.UUID
    items: tuple[ShipmentItem, ...]
    status: ShipmentStatus
    created_at: datetime
    carrier: str | None = None
    tracking_number: str | None = None
    expected_delivery_date: str | None = None
    picked_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class Payment:
    id: uuid.UUID
    amount: Decimal
    received_at: datetime
    reference: str | None = None


@dataclass(frozen=True)
class Invoice:
    number: str
    amount: Decimal
    issued_at: datetime
    due_date: str | None = None
