"""Request and response bodies of the orders API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from shared.api import ApiModel, ApiResponse, Money


class OrderLineRead(ApiResponse):
    line_no: int
    sku: str
    description: str
    quantity: Decimal
    unit_price: Money
    amount: Money
    warranty_months: int
    serial_numbers: list[str]


class ContactRead(ApiResponse):
    name: str
    email: str | None = None
    phone: str | None = None


class OrderRead(ApiResponse):
    id: uuid.UUID
    number: str
    status: str
    version: int
    contract_id: uuid.UUID | None
    customer_id: str
    customer_name: str
    contact: ContactRead | None
    owner_id: str
    region: str | None
    currency: str
    lines: list[OrderLineRead]
    total_amount: Money
    payment_terms: str
    delivery_address: str | None
    requested_delivery_date: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveredLine(ApiModel):
    line_no: Annotated[int, Field(ge=1, le=10_000)]
    serial_numbers: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=10_000)]


class DeliverOrder(ApiModel):
    """SHORTCUT (platform issue): the whole order is delivered at once."""

    lines: Annotated[list[DeliveredLine], Field(max_length=500)] = []
