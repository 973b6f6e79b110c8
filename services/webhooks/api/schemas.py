"""Response bodies of the webhooks API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.api import ApiResponse


class EventRead(ApiResponse):
    id: uuid.UUID
    type: str
    source: str
    subject: str | None
    time: datetime
    envelope: dict[str, Any]
