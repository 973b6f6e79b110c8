"""Web forms that send leads (web-to-lead): one API key and one rate limit per form (pure Python).

The form's key is 256 random bits shown once (on creation or rotation) and stored as its
SHA-256: a fast hash is enough for a random key, and a leaked table gives no usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from services.leads.domain.lead import LeadSource
from shared.domain import Aggregate


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(eq=False)
class LeadForm(Aggregate):
    id: str
    name: str
    created_at: datetime
    key_sha256: str = ""
    source: LeadSource = LeadSource.WEB_FORM
    campaign: str | None = None
    region: str | None = None
    industry: str | None = None
    rate_limit_per_minute: int = 60
    active: bool = True

    def update(
        self,
        *,
        name: str,
        source: LeadSource,
        campaign: str | None,
        region: str | None,
        industry: str | None,
        rate_limit_per_minute: int,
        active: bool,
    ) -> None:
        self.name, self.source, self.campaign = name, source, campaign
        self.region, self.industry = region, industry
        self.rate_limit_per_minute, self.active = rate_limit_per_minute, active
        self.version += 1

    def new_key(self) -> str:
        """A fresh key (the old one stops working); returned once, only its hash is kept."""
        key = secrets.token_urlsafe(32)
        self.key_sha256 = hash_key(key)
        self.version += 1
        return key

    def accepts(self, key: str | None) -> bool:
        return self.active and key is not None and hmac.compare_digest(hash_key(key), self.key_sha256)
