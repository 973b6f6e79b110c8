"""Secret links for customers (survey pages, ticket confirmations): random, stored hashed.

The token is 256 random bits; only its SHA-256 is stored, so a database leak does not let
anyone answer in a customer's name. A fast hash is enough for a random token (no dictionary
to guess from), and makes the lookup a plain unique-index match.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from services.service_desk.config import get_settings
from services.service_desk.domain import SurveyLink

SURVEY_PAGE_PATH = "/v1/surveys/answer/"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,100}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: str) -> bool:
    return _TOKEN_RE.fullmatch(token) is not None


def new_survey_link(now: datetime) -> SurveyLink:
    settings = get_settings()
    token = secrets.token_urlsafe(32)
    return SurveyLink(
        url=f"{settings.public_base_url.rstrip('/')}{SURVEY_PAGE_PATH}{token}",
        token_hash=hash_token(token),
        expires_at=now + timedelta(seconds=settings.survey_link_ttl_seconds),
    )
