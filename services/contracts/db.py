"""The contracts schema: tables and the repository (SQLAlchemy Core)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Sequence,
    String,
    Table,
    Text,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from services.contracts.domain import ApprovalStep, Contract, ContractLine, ContractStatus, Review
from services.contracts.domain.contract import HistoryEntry
from services.contracts.domain.document import Document, SignedArchive
from services.contracts.domain.payment import PaymentPlan
from services.contracts.domain.signing import Party, Signatory, Signature, SigningLink
from shared.db import service_metadata, utc_timestamp
from shared.events import ContactInfo
from shared.numbers import next_document_number
from shared.pagination import PageParams, fetch_page
from shared.repository import Repository, json_codec

metadata, platform_tables = service_metadata("contracts")

contract_number_seq = Sequence("contract_number_seq", metadata=metadata)

contracts = Table(
    "contracts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("number", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("customer_name", Text, nullable=False),
    Column("contact", JSONB),
    Column("owner_id", Text, nullable=False),
    Column("region", Text),
    Column("currency", String(3), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("discount_pct", Numeric(5, 2), nullable=False),
    Column("subtotal_amount", Numeric(18, 2), nullable=False),
    Column("total_amount", Numeric(18, 2), nullable=False),
    Column("payment_terms", Text, nullable=False),
    Column("delivery_address", Text),
    Column("requested_delivery_date", Text),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("signed_at"),
    Column("revision", Integer, nullable=False, server_default=text("1")),
    Column("owner_role", Text, nullable=False, server_default=text("'sales_rep'")),
    Column("reviews", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("approvals", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    utc_timestamp("submitted_at"),
    utc_timestamp("approved_at"),
    utc_timestamp("sent_for_signature_at"),
    Column("document_version", Integer, nullable=False, server_default=text("0")),
    Column("document_sha256", String(64)),
    Column("signatures", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("payment_plan", JSONB(none_as_null=True)),  # SQL NULL, not JSON null, when there is no plan
    Column("special_clauses", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("free_revisions", Integer, nullable=False, server_default=text("0")),
    Column("paid_service_included", Boolean, nullable=False, server_default=text("false")),
    Column("opportunity_id", UUID(as_uuid=True)),
    Column("quote_id", UUID(as_uuid=True)),
    utc_timestamp("activated_at"),
    utc_timestamp("ended_at"),
    Column("ended_by", Text),
    Column("end_reason", Text),
    Index("ix_contracts_created_at_id", "created_at", "id"),
    Index("ix_contracts_status_created_at_id", "status", "created_at", "id"),
    Index("ix_contracts_owner_id_created_at_id", "owner_id", "created_at", "id"),
    Index("ix_contracts_customer_id", "customer_id"),
    # One contract per won opportunity; hand-drafted contracts (no opportunity) add no entry.
    Index(
        "uq_contracts_opportunity_id",
        "opportunity_id",
        unique=True,
        postgresql_where=text("opportunity_id IS NOT NULL"),
    ),
)

signing_links = Table(
    "signing_links",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("contract_id", UUID(as_uuid=True), ForeignKey("contracts.contracts.id"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("party", Text, nullable=False),
    Column("signatory_name", Text, nullable=False),
    Column("signatory_email", Text),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex; the token is never stored
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("expires_at", nullable=False),
    utc_timestamp("used_at"),
    utc_timestamp("revoked_at"),
    Column("revoked_by", Text),
    Index("ix_signing_links_contract_id_created_at", "contract_id", "created_at"),
)

contract_documents = Table(
    "contract_documents",
    metadata,
    Column("contract_id", UUID(as_uuid=True), ForeignKey("contracts.contracts.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("template", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    utc_timestamp("created_at", nullable=False),
)

contract_archives = Table(
    "contract_archives",
    metadata,
    Column("contract_id", UUID(as_uuid=True), ForeignKey("contracts.contracts.id"), primary_key=True),
    Column("contract_number", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("document_version", Integer, nullable=False),
    Column("document_sha256", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("signatures", JSONB, nullable=False),
    utc_timestamp("signed_at", nullable=False),
    utc_timestamp("archived_at", nullable=False, server_default=text("now()")),
)
# Archives and documents are written once: a trigger (migration "archive") refuses UPDATE and DELETE.

contract_history = Table(
    "contract_history",
    metadata,
    Column("id", BigInteger, Identity()),  # the order things happened in
    Column("contract_id", UUID(as_uuid=True), ForeignKey("contracts.contracts.id"), nullable=False),
    utc_timestamp("at", nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text),
    Column("revision", Integer, nullable=False),
    Column("detail", JSONB, nullable=False),
    # The key is the index a contract's history is read by: one index entry per row, not two.
    PrimaryKeyConstraint("contract_id", "id"),
)

LINES = json_codec(list[ContractLine])
CONTACT = json_codec(ContactInfo | None)
REVIEWS = json_codec(list[Review])
APPROVALS = json_codec(list[ApprovalStep])
SIGNATURES = json_codec(list[Signature])
DETAIL = json_codec(dict[str, Any])
PLAN = json_codec(PaymentPlan | None)


class ContractRepository(Repository[Contract]):
    table = contracts
    noun = "contract"

    async def for_opportunity(self, opportunity_id: uuid.UUID) -> uuid.UUID | None:
        query = select(contracts.c.id).where(contracts.c.opportunity_id == opportunity_id)
        return (await self.uow.execute(query)).scalar()

    async def next_number(self, now: datetime) -> str:
        return await next_document_number(self.uow, contract_number_seq, "HT", now)

    def to_row(self, contract: Contract) -> dict[str, Any]:
        return {
            "id": contract.id,
            "number": contract.number,
            "status": contract.status.value,
            "version": contract.version,
            "customer_id": contract.customer_id,
            "customer_name": contract.customer_name,
            "contact": CONTACT.dump_python(contract.contact, mode="json"),
            "owner_id": contract.owner_id,
            "region": contract.region,
            "currency": contract.currency,
            "lines": LINES.dump_python(contract.lines, mode="json"),
            "discount_pct": contract.discount_pct,
            "subtotal_amount": contract.subtotal_amount,
            "total_amount": contract.total_amount,
            "payment_terms": contract.payment_terms,
            "delivery_address": contract.delivery_address,
            "requested_delivery_date": contract.requested_delivery_date,
            "created_at": contract.created_at,
            "signed_at": contract.signed_at,
            "revision": contract.revision,
            "owner_role": contract.owner_role,
            "reviews": REVIEWS.dump_python(contract.reviews, mode="json"),
            "approvals": APPROVALS.dump_python(contract.approvals, mode="json"),
            "submitted_at": contract.submitted_at,
            "approved_at": contract.approved_at,
            "sent_for_signature_at": contract.sent_for_signature_at,
            "document_version": contract.document_version,
            "document_sha256": contract.document_sha256,
            "signatures": SIGNATURES.dump_python(contract.signatures, mode="json"),
            "payment_plan": PLAN.dump_python(contract.payment_plan, mode="json"),
            "special_clauses": list(contract.special_clauses),
            "free_revisions": contract.free_revisions,
            "paid_service_included": contract.paid_service_included,
            "opportunity_id": contract.opportunity_id,
            "quote_id": contract.quote_id,
            "activated_at": contract.activated_at,
            "ended_at": contract.ended_at,
            "ended_by": contract.ended_by,
            "end_reason": contract.end_reason,
        }

    def from_row(self, row: Any) -> Contract:
        return Contract(
            id=row.id,
            number=row.number,
            status=ContractStatus(row.status),
            version=row.version,
            customer_id=row.customer_id,
            customer_name=row.customer_name,
            contact=CONTACT.validate_python(row.contact),
            owner_id=row.owner_id,
            region=row.region,
            currency=row.currency,
            lines=LINES.validate_python(row.lines),
            discount_pct=row.discount_pct,
            payment_terms=row.payment_terms,
            delivery_address=row.delivery_address,
            requested_delivery_date=row.requested_delivery_date,
            created_at=row.created_at,
            signed_at=row.signed_at,
            revision=row.revision,
            owner_role=row.owner_role,
            reviews=REVIEWS.validate_python(row.reviews),
            approvals=APPROVALS.validate_python(row.approvals),
            submitted_at=row.submitted_at,
            approved_at=row.approved_at,
            sent_for_signature_at=row.sent_for_signature_at,
            document_version=row.document_version,
            document_sha256=row.document_sha256,
            signatures=SIGNATURES.validate_python(row.signatures),
            payment_plan=PLAN.validate_python(row.payment_plan),
            special_clauses=list(row.special_clauses),
            free_revisions=row.free_revisions,
            paid_service_included=row.paid_service_included,
            opportunity_id=row.opportunity_id,
            quote_id=row.quote_id,
            activated_at=row.activated_at,
            ended_at=row.ended_at,
            ended_by=row.ended_by,
            end_reason=row.end_reason,
        )

    async def add(self, contract: Contract) -> None:
        await super().add(contract)
        await HistoryRepository(self.uow).write(contract)

    async def save(self, contract: Contract) -> None:
        await super().save(contract)
        await HistoryRepository(self.uow).write(contract)


class SigningLinkRepository:
    """Signing links of contracts; callers check the contract's visibility first."""

    def __init__(self, uow) -> None:
        self.uow = uow

    @staticmethod
    def _row(link: SigningLink) -> dict[str, Any]:
        return {
            "id": link.id,
            "contract_id": link.contract_id,
            "revision": link.revision,
            "party": link.party.value,
            "signatory_name": link.signatory.name,
            "signatory_email": link.signatory.email,
            "token_hash": link.token_hash,
            "created_at": link.created_at,
            "expires_at": link.expires_at,
            "used_at": link.used_at,
            "revoked_at": link.revoked_at,
            "revoked_by": link.revoked_by,
        }

    @staticmethod
    def _link(row: Any) -> SigningLink:
        return SigningLink(
            id=row.id,
            contract_id=row.contract_id,
            revision=row.revision,
            party=Party(row.party),
            signatory=Signatory(row.signatory_name, row.signatory_email),
            token_hash=row.token_hash,
            created_at=row.created_at,
            expires_at=row.expires_at,
            used_at=row.used_at,
            revoked_at=row.revoked_at,
            revoked_by=row.revoked_by,
        )

    async def add(self, link: SigningLink) -> None:
        await self.uow.execute(signing_links.insert(), self._row(link))

    async def save(self, link: SigningLink) -> None:
        row = self._row(link)
        await self.uow.execute(
            signing_links.update()
            .where(signing_links.c.id == link.id)
            .values(used_at=row["used_at"], revoked_at=row["revoked_at"], revoked_by=row["revoked_by"])
        )

    async def for_contract(self, contract_id: uuid.UUID, *, for_update: bool = False) -> list[SigningLink]:
        query = (
            select(signing_links)
            .where(signing_links.c.contract_id == contract_id)
            .order_by(signing_links.c.created_at, signing_links.c.id)
        )
        if for_update:
            query = query.with_for_update()
        return [self._link(row) for row in await self.uow.execute(query)]

    async def by_token_hash(self, token_hash: str, *, for_update: bool = False) -> SigningLink | None:
        query = select(signing_links).where(signing_links.c.token_hash == token_hash)
        if for_update:
            query = query.with_for_update()
        row = (await self.uow.execute(query)).first()
        return None if row is None else self._link(row)


class DocumentRepository:
    """Rendered document versions: written once, never updated; callers check visibility first."""

    def __init__(self, uow) -> None:
        self.uow = uow

    async def add(self, document: Document) -> None:
        self.uow.insert_later(contract_documents, document.__dict__)

    async def get(self, contract_id: uuid.UUID, version: int) -> Document | None:
        query = select(contract_documents).where(
            contract_documents.c.contract_id == contract_id, contract_documents.c.version == version
        )
        row = (await self.uow.execute(query)).first()
        return None if row is None else Document(**row._mapping)

    async def for_contract(self, contract_id: uuid.UUID) -> list[Document]:
        query = (
            select(contract_documents)
            .where(contract_documents.c.contract_id == contract_id)
            .order_by(contract_documents.c.version)
        )
        return [Document(**row._mapping) for row in await self.uow.execute(query)]


class ArchiveRepository:
    """Signed contracts' archives (insert only); callers check the contract's visibility first."""

    def __init__(self, uow) -> None:
        self.uow = uow

    async def add(self, archive: SignedArchive) -> None:
        row = {**archive.__dict__, "signatures": SIGNATURES.dump_python(list(archive.signatures), mode="json")}
        del row["archived_at"]
        await self.uow.execute(contract_archives.insert(), row)

    async def get(self, contract_id: uuid.UUID) -> SignedArchive | None:
        query = select(contract_archives).where(contract_archives.c.contract_id == contract_id)
        row = (await self.uow.execute(query)).first()
        if row is None:
            return None
        return SignedArchive(**{**row._mapping, "signatures": tuple(SIGNATURES.validate_python(row.signatures))})


class HistoryRepository:
    """The audit trail (append-only rows); callers check the contract's visibility first."""

    def __init__(self, uow) -> None:
        self.uow = uow

    async def write(self, contract: Contract) -> None:
        """Append the contract's pending history entries."""
        entries, contract.pending_history = contract.pending_history, []
        for entry in entries:
            await self.add(contract.id, entry)

    async def add(self, contract_id: uuid.UUID, entry: HistoryEntry) -> None:
        row = {**entry.__dict__, "contract_id": contract_id, "detail": DETAIL.dump_python(entry.detail, mode="json")}
        self.uow.insert_later(contract_history, row)

    async def page(self, contract_id: uuid.UUID, page: PageParams) -> tuple[list[Any], str | None]:
        query = select(contract_history).where(contract_history.c.contract_id == contract_id)
        return await fetch_page(self.uow, query, [contract_history.c.id], page)
