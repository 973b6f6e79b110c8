"""Signing links: one per party, a random token stored only as its SHA-256, single use,
expiring, revocable, and bound to the contract revision it was issued for.

The raw token is returned once, to whoever sends the contract for signature; afterwards only
its hash exists, so a database leak does not leak usable links.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain import DomainError

TOKEN_BYTES = 32  # 256 bits of randomness, URL-safe base64 (43 characters)
MAX_TTL = timedelta(days=30)


class Party(StrEnum):
    CUSTOMER = "customer"
    COMPANY = "company"


class LinkState(StrEnum):
    ACTIVE = "active"
    USED = "used"
    REVOKED = "revoked"
    EXPIRED = "expired"


class LinkRefused(DomainError):
    """The link cannot be used. ``reason`` (used, expired, revoked, superseded, unknown) lets the
    signing page say why to whoever holds the token; nobody can guess a token to ask."""

    status = 410
    title = "Signing link not usable"

    def __init__(self, detail: str, reason: str = "unknown") -> None:
        super().__init__(detail)
        self.reason = reason


class SignatureRefused(DomainError):
    """The signer did not type the signatory's name, or did not confirm."""

    status = 422
    title = "Signature not accepted"

    def __init__(self, detail: str, field: str) -> None:
        super().__init__(detail)
        self.field = field


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Signatory:
    name: str
    email: str | None = None


@dataclass(frozen=True)
class SigningLink:
    id: uuid.UUID
    contract_id: uuid.UUID
    revision: int
    party: Party
    signatory: Signatory
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @classmethod
    def issue(
        cls,
        *,
        contract_id: uuid.UUID,
        revision: int,
        party: Party,
        signatory: Signatory,
        now: datetime,
        ttl: timedelta,
    ) -> tuple[SigningLink, str]:
        """A new link and its raw token (shown once, never stored)."""
        if not timedelta(0) < ttl <= MAX_TTL:
            raise DomainError(f"a signing link expires after more than 0 and at most {MAX_TTL.days} days")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        link = cls(
            id=uuid.uuid4(),
            contract_id=contract_id,
            revision=revision,
            party=party,
            signatory=signatory,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + ttl,
        )
        return link, token

    def state(self, now: datetime) -> LinkState:
        if self.used_at is not None:
            return LinkState.USED
        if self.revoked_at is not None:
            return LinkState.REVOKED
        if now >= self.expires_at:
            return LinkState.EXPIRED
        return LinkState.ACTIVE

    def check_usable(self, now: datetime, *, revision: int) -> None:
        """Refuse a used, revoked or expired link, or one issued for another revision of the document."""
        state = self.state(now)
        if state != LinkState.ACTIVE:
            raise LinkRefused(f"this signing link was {state}: ask the sender for a new one", state.value)
        if revision != self.revision:
            raise LinkRefused("the document changed since this link was sent: ask for a new one", "superseded")

    def used(self, now: datetime, *, revision: int) -> SigningLink:
        self.check_usable(now, revision=revision)
        return replace(self, used_at=now)

    def revoked(self, now: datetime, *, by: str) -> SigningLink:
        if self.state(now) != LinkState.ACTIVE:
            raise DomainError(f"a {self.state(now)} signing link cannot be revoked")
        return replace(self, revoked_at=now, revoked_by=by)


def same_name(typed: str, signatory: str) -> bool:
    """The typed name matches the signatory's, ignoring case and runs of spaces."""
    return " ".join(typed.split()).casefold() == " ".join(signatory.split()).casefold()


@dataclass(frozen=True)
class Signature:
    """One party's signature: who typed which name, from where, over which exact document."""

    party: Party
    link_id: uuid.UUID
    revision: int
    signer_name: str
    signed_at: datetime
    document_version: int
    document_sha256: str
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def by_link(
        cls,
        link: SigningLink,
        *,
        typed_name: str,
        confirmed: bool,
        document_version: int,
        document_sha256: str,
        now: datetime,
        ip: str | None,
        user_agent: str | None,
    ) -> Signature:
        if not typed_name.strip() or not same_name(typed_name, link.signatory.name):
            raise SignatureRefused("type your name exactly as it appears on the contract", "name")
        if not confirmed:
            raise SignatureRefused("confirm that you have read the contract and agree to sign it", "confirm")
        return cls(
            party=link.party,
            link_id=link.id,
            revision=link.revision,
            signer_name=" ".join(typed_name.split()),
            signed_at=now,
            document_version=document_version,
            document_sha256=document_sha256,
            ip=ip,
            user_agent=(user_agent or "")[:500] or None,
        )
