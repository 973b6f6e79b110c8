"""Secret links for customers (survey pages, ticket confirmations, repair acceptance): random,
stored hashed.

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
CONFIRMATION_PAGE_PATH = "/v1/tickets/confirm/"
REPAIR_PAGE_PATH = "/v1/repairs/accept/"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,100}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: str) -> bool:
    return _TOKEN_RE.fullmatch(token) is not None


def _new_link(path: str, expires_at: datetime) -> SurveyLink:
    token = secrets.token_urlsafe(32)
    base = get_settings().public_base_url.rstrip("/")
    return SurveyLink(url=f"{base}{path}{token}", token_hash=hash_token(token), expires_at=expires_at)


def new_survey_link(now: datetime, *, expires_at: datetime | None = None) -> SurveyLink:
    """``expires_at``: a reminder's link ends with the survey's first link."""
    return _new_link(SURVEY_PAGE_PATH, expires_at or now + timedelta(seconds=get_settings().survey_link_ttl_seconds))


def new_confirmation_link(now: datetime) -> SurveyLink:
    """Valid while the ticket stays resolved (it auto-closes after the configured days)."""
    return _new_link(CONFIRMATION_PAGE_PATH, now + timedelta(seconds=get_settings().ticket_auto_close_after_seconds))


def new_repair_link(now: datetime) -> SurveyLink:
    return _new_link(REPAIR_PAGE_PATH, now + timedelta(seconds=get_settings().repair_acceptance_link_ttl_seconds))
