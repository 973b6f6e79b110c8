"""Events the service desk consumes, built as the orders service would publish them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from shared.events import (
    CloudEvent,
    ContactInfo,
    ContractSigned,
    ContractTerminated,
    DeliveredItem,
    Event,
    OrderDelivered,
    make_envelope,
)


def order_delivered(
    *,
    order_id: uuid.UUID | None = None,
    delivered_at: datetime | None = None,
    customer_id: str = "acme",
    owner_id: str = "rep-1",
) -> OrderDelivered:
    return OrderDelivered(
        order_id=order_id or uuid.uuid4(),
        order_number="SO-2026-000001",
        customer_id=customer_id,
        customer_name="Acme Ltd.",
        contact=ContactInfo(name="Li Lei", email="li@example.com"),
        owner_id=owner_id,
        items=(
            DeliveredItem(
                line_no=1,
                sku="PUMP-1",
                description="Pump",
                quantity=Decimal(2),
                serial_numbers=("SN-1", "SN-2"),
                warranty_months=12,
            ),
            DeliveredItem(line_no=2, sku="SVC-1", description="Install", quantity=Decimal(1)),
            DeliveredItem(line_no=3, sku="HOSE-1", description="Hose", quantity=Decimal(5), warranty_months=1),
        ),
        delivered_at=delivered_at or datetime(2026, 1, 31, 8, 0, tzinfo=UTC),
    )


def contract_signed(*, customer_id: str = "acme", total: str = "1200000.00", currency: str = "CNY") -> ContractSigned:
    return ContractSigned(
        contract_id=uuid.uuid4(),
        contract_number="HT-2026-000001",
        customer_id=customer_id,
        customer_name="Acme Ltd.",
        owner_id="rep-1",
        currency=currency,
        lines=(),
        subtotal_amount=Decimal(total),
        total_amount=Decimal(total),
        payment_terms="net 30",
        signed_at=datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
    )


def envelope(event: Event) -> CloudEvent:
    if isinstance(event, ContractSigned | ContractTerminated):
        return make_envelope(event, source="/salesline/contracts", subject=str(event.contract_id))
    return make_envelope(event, source="/salesline/orders", subject=str(event.order_id))
