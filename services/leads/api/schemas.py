"""Request and response bodies of the leads API."""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.api import ApiResponse


class AccountRead(ApiResponse):
    id: uuid.UUID
    version: int
    customer_id: str
    name: str
    owner_id: str
    classification: str
    region: str | None
    signed_contracts: int
    created_at: datetime
