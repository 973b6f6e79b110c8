"""Request and response bodies of the service desk API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import Field

from shared.api import ApiResponse


class ContactRead(ApiResponse):
    name: str
    email: str | None = None
    phone: str | None = None


class SurveyRead(ApiResponse):
    id: uuid.UUID
    status: str
    version: int
    trigger: str
    order_id: uuid.UUID | None
    customer_id: str
    customer_name: str
    contact: ContactRead | None
    owner_id: str
    created_at: datetime
    reminded_at: datetime | None
    ticket_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    csat: int | None = None
    nps: int | None = None
    comment: str | None = None
    completed_at: datetime | None = None


class WarrantyRead(ApiResponse):
    id: uuid.UUID
    version: int
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


class CoverageRead(ApiResponse):
    covered: bool
    reason: str = Field(description="covered, not_registered, expired or not_started")
    detail: str
    warranty: WarrantyRead | None
