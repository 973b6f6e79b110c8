"""Request and response bodies of the contracts API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field

from shared.api import ApiModel, ApiResponse, Currency, Money

Quantity = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=3)]
Percent = Annotated[Decimal, Field(ge=0, lt=100, max_digits=5, decimal_places=2)]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class InstalmentIn(ApiModel):
    pct: Annotated[Decimal, Field(gt=0, le=100, max_digits=5, decimal_places=2)]
    due_days: Annotated[int, Field(ge=0, le=365, description="Days after signing; 0: on signing (an advance)")]


class PaymentPlanIn(ApiModel):
    """Structured payment terms; the contract's `payment_terms` becomes their description."""

    kind: Literal["prepayment", "net", "instalments"]
    prepayment_pct: Annotated[Decimal, Field(gt=0, le=100, max_digits=5, decimal_places=2)] | None = None
    net_days: Annotated[int, Field(ge=0, le=365)] | None = Field(
        None, description="net N days; after a partial prepayment, for the balance"
    )
    instalments: Annotated[list[InstalmentIn], Field(max_length=24)] = []


class ContactIn(ApiModel):
    name: Text
    email: Annotated[str, Field(max_length=254)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None


class ContractLineIn(ApiModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    description: Annotated[str, Field(min_length=1, max_length=500)]
    quantity: Quantity
    unit_price: Money
    discount_pct: Percent = Decimal(0)
    warranty_months: Annotated[int, Field(ge=0, le=240)] = 0


class ContractCreate(ApiModel):
    """A contract drafted by hand (a won opportunity drafts one from its accepted quote)."""

    customer_id: Annotated[str, Field(min_length=1, max_length=64)]
    customer_name: Text
    contact: ContactIn | None = None
    owner_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Defaults to the caller"
    )
    region: Annotated[str, Field(max_length=64)] | None = None
    currency: Currency
    lines: Annotated[list[ContractLineIn], Field(min_length=1, max_length=500)]
    discount_pct: Percent = Decimal(0)
    payment_terms: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None,
        description="Free-text terms (default `net 30`). With a payment_plan leave it out (it becomes the "
        "plan's wording) or send that wording: anything else is a 422",
    )
    delivery_address: Annotated[str, Field(max_length=500)] | None = None
    requested_delivery_date: Annotated[str, Field(max_length=32)] | None = None
    payment_plan: PaymentPlanIn | None = Field(
        None, description="Structured terms, the source of truth: they set payment_terms"
    )
    special_clauses: Annotated[list[Annotated[str, Field(min_length=1, max_length=2000)]], Field(max_length=50)] = []
    free_revisions: Annotated[int, Field(ge=0, le=100, description="Revisions included free of charge")] = 0
    paid_service_included: bool = Field(False, description="Whether paid service (beyond warranty) is included")


class ContractAmend(ApiModel):
    """The terms to change (only those sent). Past the draft, the contract returns to draft as a
    new revision: review and approvals start again and outstanding signing links are revoked."""

    contact: ContactIn | None = None
    region: Annotated[str, Field(max_length=64)] | None = None
    lines: Annotated[list[ContractLineIn], Field(min_length=1, max_length=500)] | None = None
    discount_pct: Percent | None = None
    payment_terms: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None,
        description="Free-text terms. While the contract has a payment_plan (kept or sent), only the plan's "
        "wording; send payment_plan null with them to replace the plan by free text",
    )
    delivery_address: Annotated[str, Field(max_length=500)] | None = None
    requested_delivery_date: Annotated[str, Field(max_length=32)] | None = None
    special_clauses: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=2000)]], Field(max_length=50)] | None
    ) = None
    free_revisions: Annotated[int, Field(ge=0, le=100)] | None = None
    paid_service_included: bool | None = None
    payment_plan: PaymentPlanIn | None = Field(None, description="Structured terms; null: free-text terms only")


class DocumentRead(ApiResponse):
    """One rendered version of the contract document; `GET …/documents/{version}` serves its bytes."""

    version: int
    revision: int
    template: str
    sha256: str = Field(description="SHA-256 (hex) of the document's UTF-8 bytes")
    created_at: datetime


class ClauseCommentIn(ApiModel):
    clause: Annotated[str, Field(min_length=1, max_length=64, description="The clause number or title")]
    comment: Annotated[str, Field(min_length=1, max_length=2000)]


class ReviewIn(ApiModel):
    """Legal's decision on the revision in review; `request_changes` needs a comment per clause."""

    decision: Literal["approve", "request_changes"]
    comments: Annotated[list[ClauseCommentIn], Field(max_length=200)] = []
    note: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class EndIn(ApiModel):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class HistoryEntryRead(ApiResponse):
    """One change, review, approval, signing-link change or signature, in the order it happened."""

    id: int
    at: datetime
    action: str
    actor: str | None
    revision: int
    detail: dict[str, Any]


class RejectIn(ApiModel):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class SignatoryIn(ApiModel):
    name: Text
    email: Annotated[str, Field(max_length=254)] | None = None


class SendForSignatureIn(ApiModel):
    customer_signatory: SignatoryIn
    company_signatory: SignatoryIn
    expires_in_hours: Annotated[int, Field(ge=1, le=720, description="How long the links stay valid")] = 72


class ReissueLinkIn(ApiModel):
    party: Literal["customer", "company"]
    signatory: SignatoryIn | None = Field(None, description="Defaults to the party's previous signatory")
    expires_in_hours: Annotated[int, Field(ge=1, le=720)] = 72


class SigningLinkRead(ApiResponse):
    id: uuid.UUID
    party: str
    revision: int
    signatory_name: str
    signatory_email: str | None
    state: str = Field(description="active, used, revoked or expired")
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


class IssuedLinkRead(SigningLinkRead):
    token: str = Field(description="Shown only in this response: only its SHA-256 is stored")
    url: str = Field(description="The signing page for this party (holds the token): send it to the signatory")


class ClauseCommentRead(ApiResponse):
    clause: str
    comment: str


class ReviewRead(ApiResponse):
    revision: int
    reviewer: str
    decision: str
    reviewed_at: datetime
    comments: list[ClauseCommentRead]
    note: str | None


class ApprovalStepRead(ApiResponse):
    """One approval step: why it was needed (rules, threshold, policy version) and who decided it."""

    revision: int
    role: str
    rules: list[str]
    threshold: str
    policy_version: str
    status: str
    decided_by: str | None
    decided_role: str | None
    authority_pct: Decimal | None = Field(description="The decider's discount authority; null: no limit")
    decided_policy_version: str | None
    decided_at: datetime | None
    reason: str | None


class ContractLineRead(ApiResponse):
    sku: str
    description: str
    quantity: Decimal
    unit_price: Money
    discount_pct: Decimal
    amount: Money
    warranty_months: int


class ContactRead(ApiResponse):
    name: str
    email: str | None = None
    phone: str | None = None


class SignatureRead(ApiResponse):
    """A party's signature: the name typed, from where, and the exact document (version, SHA-256)."""

    party: str
    link_id: uuid.UUID
    revision: int
    signer_name: str
    signed_at: datetime
    document_version: int
    document_sha256: str
    ip: str | None
    user_agent: str | None


class ArchiveRead(ApiResponse):
    """The signed contract as archived (immutable): the document both parties signed and their signatures."""

    contract_number: str
    revision: int
    document_version: int
    document_sha256: str = Field(description="SHA-256 (hex) of the archived document's UTF-8 bytes")
    signatures: list[SignatureRead]
    signed_at: datetime
    archived_at: datetime
    document_url: str = Field(description="The archived document's exact bytes (HTML)")
    pdf_url: str = Field(description="A PDF rendering of the archived document and its signatures")


class ContractRead(ApiResponse):
    id: uuid.UUID
    number: str
    status: str
    version: int
    customer_id: str
    customer_name: str
    contact: ContactRead | None
    owner_id: str
    region: str | None
    currency: str
    lines: list[ContractLineRead]
    discount_pct: Decimal
    subtotal_amount: Money
    total_amount: Money
    payment_terms: str
    delivery_address: str | None
    requested_delivery_date: str | None
    payment_plan: dict[str, Any] | None = Field(description="The structured payment terms, if any")
    special_clauses: list[str]
    free_revisions: int
    paid_service_included: bool
    created_at: datetime
    signed_at: datetime | None
    revision: int
    owner_role: str
    submitted_at: datetime | None
    approved_at: datetime | None
    sent_for_signature_at: datetime | None
    document_version: int = Field(description="The current document version (see /documents)")
    document_sha256: str | None
    opportunity_id: uuid.UUID | None = Field(description="The won opportunity it was drafted from, if any")
    quote_id: uuid.UUID | None
    activated_at: datetime | None
    ended_at: datetime | None = Field(description="When it was completed or terminated")
    ended_by: str | None
    end_reason: str | None
    pending_role: str | None = Field(description="Whose approval the contract waits for")
    reviews: list[ReviewRead]
    approvals: list[ApprovalStepRead]
    signatures: list[SignatureRead] = Field(description="Every signature, of every revision")


class SentForSignatureRead(ApiResponse):
    contract: ContractRead
    links: list[IssuedLinkRead]
