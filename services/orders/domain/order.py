"""The order aggregate (thin platform version).

SHORTCUT (platform issue): an order is created ``approved`` from ``contract.signed`` and
:meth:`Order.deliver_shortcut` delivers everything at once. The orders issue adds
three-level approval, fulfilment, shipments, payment and invoices.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.domain import Aggregate, InvalidTransition
from shared.events import ContactInfo, ContractSigned, DeliveredItem, OrderCreated, OrderDelivered


class OrderStatus(StrEnum):
    APPROVED = "approved"
    DELIVERED = "delivered"


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


@dataclass(eq=False)
class Order(Aggregate):
    id: uuid.UUID
    number: str
    customer_id: str
    customer_name: str
    owner_id: str
    currency: str
    lines: list[OrderLine]
    total_amount: Decimal
    payment_terms: str
    created_at: datetime
    contract_id: uuid.UUID | None = None
    contact: ContactInfo | None = None
    region: str | None = None
    delivery_address: str | None = None
    requested_delivery_date: str | None = None
    status: OrderStatus = OrderStatus.APPROVED
    delivered_at: datetime | None = None

    @classmethod
    def from_signed_contract(cls, event: ContractSigned, *, order_id: uuid.UUID, number: str, now: datetime) -> Order:
        order = cls(
            id=order_id,
            number=number,
            contract_id=event.contract_id,
            customer_id=event.customer_id,
            customer_name=event.customer_name,
            contact=event.contact,
            owner_id=event.owner_id,
            region=event.region,
            currency=event.currency,
            lines=[
                OrderLine(
                    line_no=line.line_no,
                    sku=line.sku,
                    description=line.description,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    amount=line.amount,
                    warranty_months=line.warranty_months,
                )
                for line in event.lines
            ],
            total_amount=event.total_amount,
            payment_terms=event.payment_terms,
            delivery_address=event.delivery_address,
            requested_delivery_date=event.requested_delivery_date,
            created_at=now,
        )
        order.record(
            OrderCreated(
                order_id=order.id,
                order_number=order.number,
                contract_id=order.contract_id,
                customer_id=order.customer_id,
                customer_name=order.customer_name,
                owner_id=order.owner_id,
                currency=order.currency,
                total_amount=order.total_amount,
            )
        )
        return order

    def deliver_shortcut(self, now: datetime, serial_numbers: dict[int, tuple[str, ...]] | None = None) -> None:
        """SHORTCUT: everything on the order is delivered at once; emits ``order.delivered`` once."""
        if self.status != OrderStatus.APPROVED:
            raise InvalidTransition(f"a {self.status} order cannot be delivered")
        serial_numbers = serial_numbers or {}
        self.lines = [
            OrderLine(**{**line.__dict__, "serial_numbers": serial_numbers.get(line.line_no, line.serial_numbers)})
            for line in self.lines
        ]
        self.status = OrderStatus.DELIVERED
        self.delivered_at = now
        self.record(
            OrderDelivered(
                order_id=self.id,
                order_number=self.number,
                contract_id=self.contract_id,
                customer_id=self.customer_id,
                customer_name=self.customer_name,
                contact=self.contact,
                owner_id=self.owner_id,
                items=tuple(
                    DeliveredItem(
                        line_no=line.line_no,
                        sku=line.sku,
                        description=line.description,
                        quantity=line.quantity,
                        serial_numbers=line.serial_numbers,
                        warranty_months=line.warranty_months,
                    )
                    for line in self.lines
                ),
                delivered_at=now,
            )
        )
