"""The orders schema: tables and the repository (SQLAlchemy Core)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, Numeric, Sequence, String, Table, Text, select
from sqlalchemy.dialects.postgresql import JSONB, UUID

from services.orders.domain import Order, OrderLine, OrderStatus
from shared.db import service_metadata, utc_timestamp
from shared.events import ContactInfo
from shared.repository import Repository, json_codec

metadata, platform_tables = service_metadata("orders")

order_number_seq = Sequence("order_number_seq", metadata=metadata)

orders = Table(
    "orders",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("number", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    # One order per contract: the last line of defence behind the inbox and the state guard.
    Column("contract_id", UUID(as_uuid=True), unique=True),
    Column("customer_id", Text, nullable=False),
    Column("customer_name", Text, nullable=False),
    Column("contact", JSONB),
    Column("owner_id", Text, nullable=False),
    Column("region", Text),
    Column("currency", String(3), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("total_amount", Numeric(18, 2), nullable=False),
    Column("payment_terms", Text, nullable=False),
    Column("delivery_address", Text),
    Column("requested_delivery_date", Text),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("delivered_at"),
    Index("ix_orders_created_at_id", "created_at", "id"),
    Index("ix_orders_owner_id_created_at_id", "owner_id", "created_at", "id"),
    Index("ix_orders_customer_id", "customer_id"),
)

LINES = json_codec(list[OrderLine])
CONTACT = json_codec(ContactInfo | None)


class OrderRepository(Repository[Order]):
    table = orders
    noun = "order"

    async def next_number(self, now: datetime) -> str:
        value = await self.uow.connection.scalar(order_number_seq.next_value())
        return f"SO-{now.year}-{value:06d}"

    async def exists_for_contract(self, contract_id: uuid.UUID) -> bool:
        query = select(orders.c.id).where(orders.c.contract_id == contract_id)
        return (await self.uow.execute(query)).first() is not None

    def to_row(self, order: Order) -> dict[str, Any]:
        return {
            "id": order.id,
            "number": order.number,
            "status": order.status.value,
            "version": order.version,
            "contract_id": order.contract_id,
            "customer_id": order.customer_id,
            "customer_name": order.customer_name,
            "contact": CONTACT.dump_python(order.contact, mode="json"),
            "owner_id": order.owner_id,
            "region": order.region,
            "currency": order.currency,
            "lines": LINES.dump_python(order.lines, mode="json"),
            "total_amount": order.total_amount,
            "payment_terms": order.payment_terms,
            "delivery_address": order.delivery_address,
            "requested_delivery_date": order.requested_delivery_date,
            "created_at": order.created_at,
            "delivered_at": order.delivered_at,
        }

    def from_row(self, row: Any) -> Order:
        return Order(
            id=row.id,
            number=row.number,
            status=OrderStatus(row.status),
            version=row.version,
            contract_id=row.contract_id,
            customer_id=row.customer_id,
            customer_name=row.customer_name,
            contact=CONTACT.validate_python(row.contact),
            owner_id=row.owner_id,
            region=row.region,
            currency=row.currency,
            lines=LINES.validate_python(row.lines),
            total_amount=row.total_amount,
            payment_terms=row.payment_terms,
            delivery_address=row.delivery_address,
            requested_delivery_date=row.requested_delivery_date,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )
