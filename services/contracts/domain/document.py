"""Contract documents: each rendering of a revision is a version, kept with its SHA-256.

The hash is taken over the exact UTF-8 bytes that are stored, shown to the signer and
archived, so anyone holding the bytes can check them; a stored document whose bytes no
longer match its hash has been tampered with and must not be signed or served as genuine.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.contracts.domain.signing import Signature
from shared.domain import DomainError


class DocumentTampered(DomainError):
    """The stored document no longer matches the SHA-256 recorded when it was rendered."""

    status = 409
    title = "Document integrity check failed"


def sha256_hex(content: str | bytes) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


@dataclass(frozen=True)
class Document:
    contract_id: uuid.UUID
    version: int  # 1, 2, ... per contract: every change of the rendered text
    revision: int  # the contract revision it renders
    template: str
    content: str
    sha256: str
    created_at: datetime

    @classmethod
    def rendered(
        cls, *, contract_id: uuid.UUID, version: int, revision: int, template: str, content: str, now: datetime
    ) -> Document:
        return cls(contract_id, version, revision, template, content, sha256_hex(content), now)

    def verify(self, expected_sha256: str | None = None) -> None:
        """Refuse bytes that do not hash to the recorded SHA-256 (or to ``expected_sha256``)."""
        actual = sha256_hex(self.content)
        if actual != self.sha256 or (expected_sha256 is not None and actual != expected_sha256):
            raise DocumentTampered(
                f"contract document version {self.version} does not match its recorded SHA-256: "
                "it was changed after it was rendered"
            )


@dataclass(frozen=True)
class SignedArchive:
    """The signed contract as archived: the exact document bytes both parties signed, its SHA-256
    and their signatures. Written once when the last party signs; the table refuses changes."""

    contract_id: uuid.UUID
    contract_number: str
    revision: int
    document_version: int
    document_sha256: str
    content: str
    signatures: tuple[Signature, ...]
    signed_at: datetime
    archived_at: datetime | None = None  # set by the database

    @classmethod
    def of(cls, contract_number: str, document: Document, signatures: list[Signature], signed_at: datetime):
        if {s.document_sha256 for s in signatures} != {document.sha256}:
            raise DomainError("every archived signature must be over the archived document")
        return cls(
            contract_id=document.contract_id,
            contract_number=contract_number,
            revision=document.revision,
            document_version=document.version,
            document_sha256=document.sha256,
            content=document.content,
            signatures=tuple(signatures),
            signed_at=signed_at,
        )

    def verify(self) -> None:
        if sha256_hex(self.content) != self.document_sha256:
            raise DocumentTampered(
                f"the archived document of contract {self.contract_number} does not match its SHA-256"
            )
