"""Request and response bodies of the service desk API."""

from __future__ import annotations

import uuid
from datetime import datetime

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
