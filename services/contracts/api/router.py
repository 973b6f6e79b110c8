"""HTTP routes of the contracts service."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import TypeAdapter

from services.contracts import handlers
from services.contracts.api import signing_page
from services.contracts.api.schemas import (
    ArchiveRead,
    ContractAmend,
    ContractCreate,
    ContractRead,
    DocumentRead,
    EndIn,
    HistoryEntryRead,
    IssuedLinkRead,
    ReissueLinkIn,
    RejectIn,
    ReviewIn,
    SendForSignatureIn,
    SentForSignatureRead,
    SigningLinkRead,
)
from services.contracts.config import get_settings
from services.contracts.domain import ClauseComment, ContractLine, ContractStatus, ReviewDecision
from services.contracts.domain.document import sha256_hex
from services.contracts.domain.payment import Instalment, PaymentPlan, PlanKind
from services.contracts.domain.signing import Party, Signatory, SigningLink
from services.contracts.pdf import render_pdf
from shared.api import SafeStr
from shared.auth import (
    ADMIN,
    LEGAL,
    MARKETING_DIRECTOR,
    REGIONAL_DIRECTOR,
    SALES_MANAGER,
    SALES_REP,
    Principal,
    require_roles,
)
from shared.concurrency import set_etag
from shared.errors import Problem, problem_responses
from shared.events import ContactInfo
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

PLAN_JSON = TypeAdapter(PaymentPlan | None)
router = APIRouter(prefix="/v1/contracts", tags=["contracts"], route_class=IdempotentRoute)

Writer = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, ADMIN))]
Reader = Annotated[
    Principal,
    Depends(require_roles(SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, MARKETING_DIRECTOR, LEGAL, ADMIN)),
]
Reviewer = Annotated[Principal, Depends(require_roles(LEGAL, ADMIN))]
Approver = Annotated[Principal, Depends(require_roles(SALES_MANAGER, REGIONAL_DIRECTOR, MARKETING_DIRECTOR, ADMIN))]
DECISION_RESPONSES = problem_responses(400, 401, 403, 404, 409, 412, 422, 428)


def required_version(request: Request) -> int | None:
    """``If-Match`` is required on decisions, so nobody approves a version they have not read."""
    if "if-match" not in request.headers:
        raise Problem(
            428,
            "Precondition Required",
            "Send If-Match with the ETag of the contract you reviewed.",
            slug="if-match-required",
        )
    return expected_version(request)


Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.post("", status_code=201, response_model=ContractRead, responses=problem_responses(400, 401, 403, 409, 422))
async def create_contract(body: ContractCreate, response: Response, principal: Writer, uow: Uow) -> ContractRead:
    """Draft a contract. Send `Idempotency-Key` so a retried request does not draft it twice."""
    owner_id = body.owner_id or principal.sub
    if SALES_REP in principal.roles and not (principal.roles - {SALES_REP}):
        owner_id = principal.sub  # a rep drafts only for themself
    cmd = handlers.DraftContract(
        customer_id=body.customer_id,
        customer_name=body.customer_name,
        owner_id=owner_id,
        currency=body.currency,
        lines=[ContractLine(**line.model_dump()) for line in body.lines],
        payment_terms=body.payment_terms,
        contact=ContactInfo(**body.contact.model_dump()) if body.contact else None,
        region=body.region,
        discount_pct=Decimal(body.discount_pct),
        delivery_address=body.delivery_address,
        requested_delivery_date=body.requested_delivery_date,
        special_clauses=tuple(body.special_clauses),
        payment_plan=payment_plan(body.payment_plan.model_dump()) if body.payment_plan else None,
        free_revisions=body.free_revisions,
        paid_service_included=body.paid_service_included,
        owner_role=handlers.owner_role_for(principal, owner_id),
        drafted_by=principal.sub,
    )
    contract = await handlers.draft_contract(cmd, uow)
    response.headers["Location"] = f"/v1/contracts/{contract.id}"
    set_etag(response, contract.version)
    return _read(contract)


@router.get("", response_model=Page[ContractRead], responses=problem_responses(400, 401, 403))
async def list_contracts(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    customer_id: Annotated[SafeStr | None, Query(max_length=64)] = None,
    status: ContractStatus | None = None,
    opportunity_id: Annotated[uuid.UUID | None, Query(description="The won opportunity it was drafted from")] = None,
) -> Page[ContractRead]:
    items, next_cursor = await handlers.list_contracts(
        principal,
        uow,
        page,
        customer_id=customer_id,
        status=status.value if status else None,
        opportunity_id=opportunity_id,
    )
    return paginated(request, response, [_read(c) for c in items], next_cursor)


@router.get("/{contract_id}", response_model=ContractRead, responses=problem_responses(401, 403, 404))
async def get_contract(contract_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> ContractRead:
    contract = await handlers.get_contract(contract_id, principal, uow)
    set_etag(response, contract.version)
    return _read(contract)


@router.patch("/{contract_id}", response_model=ContractRead, responses=DECISION_RESPONSES)
async def amend_contract(
    contract_id: uuid.UUID, body: ContractAmend, request: Request, response: Response, principal: Writer, uow: Uow
) -> ContractRead:
    """Change the terms (`If-Match` required); a new document version is rendered.

    A contract in review, approval or out for signature returns to draft as a new revision, so it
    is reviewed and approved again, and the signing links still out are revoked.
    """
    version = required_version(request)
    terms = body.model_dump(exclude_unset=True)
    if "lines" in terms:
        terms["lines"] = [ContractLine(**line) for line in terms["lines"]]
    if "payment_plan" in terms:
        terms["payment_plan"] = payment_plan(terms["payment_plan"]) if terms["payment_plan"] else None
    if "contact" in terms:
        terms["contact"] = ContactInfo(**terms["contact"]) if terms["contact"] else None
    if not terms:
        raise Problem(422, "Nothing to amend", "Send at least one term to change.", slug="empty-amendment")
    required = ("lines", "payment_terms", "discount_pct", "special_clauses", "free_revisions", "paid_service_included")
    if any(terms.get(name, "") is None for name in required):
        raise Problem(422, "Required term", f"{', '.join(required)} cannot be null.", slug="null-term")
    contract = await handlers.amend_contract(contract_id, terms, principal, uow, if_match=version)
    set_etag(response, contract.version)
    return _read(contract)


@router.get("/{contract_id}/documents", response_model=list[DocumentRead], responses=problem_responses(401, 403, 404))
async def list_documents(contract_id: uuid.UUID, principal: Reader, uow: Uow) -> list[DocumentRead]:
    """Every rendered version of the contract document, oldest first, with its SHA-256."""
    documents = await handlers.list_documents(contract_id, principal, uow)
    return [DocumentRead.model_validate(d.__dict__) for d in documents]


@router.get(
    "/{contract_id}/documents/{version}",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **problem_responses(401, 403, 404, 409)},
)
async def get_document(
    contract_id: uuid.UUID, version: Annotated[int, Path(ge=1, le=1_000_000)], principal: Reader, uow: Uow
) -> HTMLResponse:
    """The exact bytes of a document version (HTML). `Repr-Digest` carries their SHA-256 (RFC 9530);
    a stored document that no longer matches its recorded hash is a 409, never served."""
    document = await handlers.get_document(contract_id, version, principal, uow)
    return HTMLResponse(document.content, headers=document_headers(document.sha256))


@router.get("/{contract_id}/archive", response_model=ArchiveRead, responses=problem_responses(401, 403, 404, 409))
async def get_archive(contract_id: uuid.UUID, principal: Reader, uow: Uow) -> ArchiveRead:
    """The signed contract's archive (404 until both parties have signed; 409 if it fails its hash check)."""
    archive = await handlers.get_archive(contract_id, principal, uow)
    base = f"/v1/contracts/{contract_id}/archive"
    return ArchiveRead.model_validate(
        {
            **archive.__dict__,
            "signatures": [s.__dict__ for s in archive.signatures],
            "document_url": f"{base}/document",
            "pdf_url": f"{base}/pdf",
        }
    )


@router.get(
    "/{contract_id}/archive/document",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **problem_responses(401, 403, 404, 409)},
)
async def get_archived_document(contract_id: uuid.UUID, principal: Reader, uow: Uow) -> HTMLResponse:
    """The exact bytes both parties signed; `Repr-Digest` carries their SHA-256 (RFC 9530)."""
    archive = await handlers.get_archive(contract_id, principal, uow)
    return HTMLResponse(archive.content, headers=document_headers(archive.document_sha256))


@router.get(
    "/{contract_id}/archive/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **problem_responses(401, 403, 404, 409, 503)},
)
async def get_archived_pdf(contract_id: uuid.UUID, principal: Reader, uow: Uow) -> Response:
    """A PDF of the archived document and its signatures, rendered from the hash-verified archive.

    `Repr-Digest` is the PDF's own SHA-256; `X-Document-SHA256` the signed document's.
    """
    archive = await handlers.get_archive(contract_id, principal, uow)
    content = await asyncio.to_thread(render_pdf, archive, get_settings())
    headers = {
        **document_headers(sha256_hex(content)),
        "X-Document-SHA256": archive.document_sha256,
        "Content-Disposition": f'attachment; filename="{archive.contract_number}.pdf"',
    }
    return Response(content, media_type="application/pdf", headers=headers)


@router.get(
    "/{contract_id}/history", response_model=Page[HistoryEntryRead], responses=problem_responses(400, 401, 403, 404)
)
async def contract_history(
    contract_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[HistoryEntryRead]:
    """The audit trail, oldest first: drafting, amendments, reviews, approvals, signing links,
    signatures, signing, archiving, activation, completion and termination, each with who and when."""
    rows, next_cursor = await handlers.contract_history(contract_id, principal, uow, page)
    return paginated(request, response, [HistoryEntryRead.model_validate(dict(r._mapping)) for r in rows], next_cursor)


@router.post("/{contract_id}/activate", response_model=ContractRead, responses=DECISION_RESPONSES)
async def activate_contract(
    contract_id: uuid.UUID, request: Request, response: Response, principal: Writer, uow: Uow
) -> ContractRead:
    """A signed contract comes into force (`If-Match` required)."""
    version = required_version(request)
    contract = await handlers.activate_contract(contract_id, principal, uow, if_match=version)
    set_etag(response, contract.version)
    return _read(contract)


@router.post("/{contract_id}/complete", response_model=ContractRead, responses=DECISION_RESPONSES)
async def complete_contract(
    contract_id: uuid.UUID, body: EndIn, request: Request, response: Response, principal: Writer, uow: Uow
) -> ContractRead:
    """An active contract is fulfilled (`If-Match` required), with the reason recorded."""
    version = required_version(request)
    contract = await handlers.end_contract(
        contract_id, principal, uow, terminate=False, reason=body.reason, if_match=version
    )
    set_etag(response, contract.version)
    return _read(contract)


@router.post("/{contract_id}/terminate", response_model=ContractRead, responses=DECISION_RESPONSES)
async def terminate_contract(
    contract_id: uuid.UUID, body: EndIn, request: Request, response: Response, principal: Writer, uow: Uow
) -> ContractRead:
    """A signed or active contract ends early (`If-Match` required): `contract.terminated` with the reason."""
    version = required_version(request)
    contract = await handlers.end_contract(
        contract_id, principal, uow, terminate=True, reason=body.reason, if_match=version
    )
    set_etag(response, contract.version)
    return _read(contract)


@router.post("/{contract_id}/submit", response_model=ContractRead, responses=DECISION_RESPONSES)
async def submit_contract(
    contract_id: uuid.UUID, request: Request, response: Response, principal: Writer, uow: Uow
) -> ContractRead:
    """Submit the draft revision for legal review (`contract.submitted`). `If-Match` is optional here."""
    contract = await handlers.submit_contract(contract_id, principal, uow, if_match=expected_version(request))
    set_etag(response, contract.version)
    return _read(contract)


@router.post("/{contract_id}/review", response_model=ContractRead, responses=DECISION_RESPONSES)
async def review_contract(
    contract_id: uuid.UUID, body: ReviewIn, request: Request, response: Response, principal: Reviewer, uow: Uow
) -> ContractRead:
    """Legal review of the revision in review (`If-Match` required).

    `approve` routes it to the approvers the discount authority policy requires (or approves it
    when none is needed, `contract.approved`); `request_changes` returns it to draft as a new
    revision, with one comment per clause (`contract.rejected`, stage `legal_review`).
    """
    version = required_version(request)
    contract = await handlers.review_contract(
        contract_id,
        principal,
        uow,
        decision=ReviewDecision(body.decision),
        comments=tuple(ClauseComment(c.clause, c.comment) for c in body.comments),
        note=body.note,
        if_match=version,
    )
    set_etag(response, contract.version)
    return _read(contract)


@router.post("/{contract_id}/approve", response_model=ContractRead, responses=DECISION_RESPONSES)
async def approve_contract(
    contract_id: uuid.UUID, request: Request, response: Response, principal: Approver, uow: Uow
) -> ContractRead:
    """Approve the pending step (`If-Match` required); the last step approves the contract.

    The step needs its role or a higher discount authority; the decision records the approver,
    their authority, the policy version and the threshold. Nobody decides two steps of one revision.
    """
    version = required_version(request)
    contract, _ = await handlers.approve_contract(contract_id, principal, uow, if_match=version)
    set_etag(response, contract.version)
    return _read(contract)


@router.post("/{contract_id}/reject", response_model=ContractRead, responses=DECISION_RESPONSES)
async def reject_contract(
    contract_id: uuid.UUID, body: RejectIn, request: Request, response: Response, principal: Approver, uow: Uow
) -> ContractRead:
    """Reject at the pending step (`If-Match` required): back to draft as a new revision (`contract.rejected`)."""
    version = required_version(request)
    contract, _ = await handlers.reject_contract(contract_id, principal, uow, reason=body.reason, if_match=version)
    set_etag(response, contract.version)
    return _read(contract)


@router.post("/{contract_id}/send-for-signature", response_model=SentForSignatureRead, responses=DECISION_RESPONSES)
async def send_for_signature(
    contract_id: uuid.UUID,
    body: SendForSignatureIn,
    request: Request,
    response: Response,
    principal: Writer,
    uow: Uow,
) -> SentForSignatureRead:
    """Send the approved revision for signature (`If-Match` required): one link per party.

    The response is the only place the links' tokens appear (only their SHA-256 is stored):
    deliver each link to its signatory. Links are single use, expire, and can be revoked.
    """
    version = required_version(request)
    contract, issued = await handlers.send_for_signature(
        contract_id,
        principal,
        uow,
        customer=Signatory(body.customer_signatory.name, body.customer_signatory.email),
        company=Signatory(body.company_signatory.name, body.company_signatory.email),
        ttl=timedelta(hours=body.expires_in_hours),
        if_match=version,
    )
    set_etag(response, contract.version)
    return SentForSignatureRead(contract=_read(contract), links=[_issued(i.link, i.token) for i in issued])


@router.get("/{contract_id}/signing-links", response_model=list[SigningLinkRead], responses=problem_responses(404))
async def list_signing_links(contract_id: uuid.UUID, principal: Reader, uow: Uow) -> list[SigningLinkRead]:
    """Every signing link of the contract, oldest first, with its state (tokens are never shown again)."""
    now = datetime.now(UTC)
    return [_link(link, now) for link in await handlers.list_signing_links(contract_id, principal, uow)]


@router.post(
    "/{contract_id}/signing-links",
    status_code=201,
    response_model=IssuedLinkRead,
    responses=problem_responses(400, 404, 409, 422),
)
async def reissue_signing_link(
    contract_id: uuid.UUID, body: ReissueLinkIn, principal: Writer, uow: Uow
) -> IssuedLinkRead:
    """A new link for one party (its active links are revoked), e.g. after a link expired or leaked."""
    signatory = Signatory(body.signatory.name, body.signatory.email) if body.signatory else None
    issued = await handlers.reissue_signing_link(
        contract_id,
        Party(body.party),
        principal,
        uow,
        ttl=timedelta(hours=body.expires_in_hours),
        signatory=signatory,
    )
    return _issued(issued.link, issued.token)


@router.post(
    "/{contract_id}/signing-links/{link_id}/revoke",
    response_model=SigningLinkRead,
    responses=problem_responses(404, 422),
)
async def revoke_signing_link(
    contract_id: uuid.UUID, link_id: uuid.UUID, principal: Writer, uow: Uow
) -> SigningLinkRead:
    link = await handlers.revoke_signing_link(contract_id, link_id, principal, uow)
    return _link(link, datetime.now(UTC))


def payment_plan(plan: dict) -> PaymentPlan:
    """The domain plan from the request's (an amendment's holds only the fields sent)."""
    return PaymentPlan(
        kind=PlanKind(plan["kind"]),
        prepayment_pct=plan.get("prepayment_pct"),
        net_days=plan.get("net_days"),
        instalments=tuple(Instalment(**i) for i in plan.get("instalments", ())),
    )


def document_headers(sha256_hex: str) -> dict[str, str]:
    digest = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
    return {"Repr-Digest": f"sha-256=:{digest}:", "ETag": f'"{sha256_hex}"', "Cache-Control": "private, no-store"}


def _link(link: SigningLink, now: datetime) -> SigningLinkRead:
    return SigningLinkRead.model_validate(
        {
            **link.__dict__,
            "party": link.party.value,
            "signatory_name": link.signatory.name,
            "signatory_email": link.signatory.email,
            "state": link.state(now).value,
        }
    )


def _issued(link: SigningLink, token: str) -> IssuedLinkRead:
    url = f"{get_settings().public_base_url.rstrip('/')}{signing_page.PATH}/{token}"
    return IssuedLinkRead(**_link(link, datetime.now(UTC)).model_dump(), token=token, url=url)


def _read(contract) -> ContractRead:
    step = contract.pending_step
    return ContractRead.model_validate(
        {
            **contract.__dict__,
            "pending_role": step.role if step else None,
            "status": contract.status.value,
            "subtotal_amount": contract.subtotal_amount,
            "total_amount": contract.total_amount,
            "lines": [{**line.__dict__, "amount": line.amount} for line in contract.lines],
            "contact": contract.contact.model_dump() if contract.contact else None,
            "payment_plan": PLAN_JSON.dump_python(contract.payment_plan, mode="json"),
        }
    )
