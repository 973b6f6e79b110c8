"""Warranty of delivered items: registered from ``order.delivered``, checked on a claim.

One warranty per serial number (or per order line when the items carry none). It starts at
the delivery time and ends ``warranty_months`` calendar months later (``relativedelta``:
31 January + 1 month is 28/29 February, never 3 March).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta

from shared.domain import Aggregate
from shared.events import OrderDelivered, WarrantyRegistered


def add_months(start: datetime, months: int) -> datetime:
    return start + relativedelta(months=months)


def unit_key(line_no: int, serial_number: str | None) -> str:
    """What makes a warranty unique within an order: its serial, or its line for unserialised items."""
    return f"sn:{serial_number}" if serial_number else f"line:{line_no}"


@dataclass(eq=False)
class Warranty(Aggregate):
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    line_no: int
    sku: str
    description: str
    serial_number: str | None
    quantity: Decimal
    customer_id: str
    owner_id: str
    warranty_months: int
    starts_at: datetime
    ends_at: datetime
    created_at: datetime

    @property
    def unit(self) -> str:
        return unit_key(self.line_no, self.serial_number)

    @classmethod
    def register_delivery(
        cls,
        event: OrderDelivered,
        *,
        now: datetime,
        already: Iterable[str] = (),
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> list[Warranty]:
        """Warranties for the delivered items that carry one and are not registered yet.

        ``already`` holds the unit keys registered for this order before, so a delivery that
        arrives twice (or overlaps an earlier partial delivery) registers each unit once.
        """
        seen = set(already)
        warranties = []
        for item in event.items:
            if item.warranty_months <= 0:
                continue
            units = [(sn, Decimal(1)) for sn in dict.fromkeys(item.serial_numbers)] or [(None, item.quantity)]
            for serial_number, quantity in units:
                key = unit_key(item.line_no, serial_number)
                if key in seen:
                    continue
                seen.add(key)
                warranty = cls(
                    id=new_id(),
                    order_id=event.order_id,
                    order_number=event.order_number,
                    line_no=item.line_no,
                    sku=item.sku,
                    description=item.description,
                    serial_number=serial_number,
                    quantity=quantity,
                    customer_id=event.customer_id,
                    owner_id=event.owner_id,
                    warranty_months=item.warranty_months,
                    starts_at=event.delivered_at,
                    ends_at=add_months(event.delivered_at, item.warranty_months),
                    created_at=now,
                )
                warranty.record(
                    WarrantyRegistered(
                        warranty_id=warranty.id,
                        order_id=warranty.order_id,
                        customer_id=warranty.customer_id,
                        sku=warranty.sku,
                        serial_number=warranty.serial_number,
                        starts_at=warranty.starts_at,
                        ends_at=warranty.ends_at,
                    )
                )
                warranties.append(warranty)
        return warranties


@dataclass(frozen=True)
class Coverage:
    covered: bool
    reason: str  # a stable code: covered, not_registered, expired, not_started
    detail: str
    warranty: Warranty | None = None


def check_coverage(candidates: Iterable[Warranty], at: datetime, *, what: str) -> Coverage:
    """Whether ``what`` (e.g. ``serial number SN-1``) is under warranty at ``at``, and why.

    With several candidates (an order line delivered in several units) a covering one wins,
    else the one that ended last explains the refusal.
    """
    warranties = sorted(candidates, key=lambda w: w.ends_at, reverse=True)
    if not warranties:
        return Coverage(False, "not_registered", f"no warranty is registered for {what}")
    for warranty in warranties:
        if warranty.starts_at <= at < warranty.ends_at:
            return Coverage(
                True,
                "covered",
                f"{what} is under a {warranty.warranty_months}-month warranty until {warranty.ends_at.isoformat()}",
                warranty,
            )
    latest = warranties[0]
    if at < latest.starts_at:
        return Coverage(
            False, "not_started", f"the warranty of {what} starts at {latest.starts_at.isoformat()}", latest
        )
    return Coverage(False, "expired", f"the warranty of {what} ended at {latest.ends_at.isoformat()}", latest)
