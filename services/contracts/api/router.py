"""HTTP routes of the contracts service."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.contracts import handlers
from services.contracts.api.schemas import ContractCreate, ContractRead
from services.contracts.domain import ContractLine
from shared.api import SafeStr
from shared.auth import ADMIN, LEGAL, SALES_MANAGER, SALES_REP, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.events import ContactInfo
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/contracts", tags=["contracts"], route_class=IdempotentRoute)

Writer = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, LEGAL, ADMIN))]
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
) -> Page[ContractRead]:
    items, next_cursor = await handlers.list_contracts(principal, uow, page, customer_id=customer_id)
    return paginated(request, response, [_read(c) for c in items], next_cursor)


@router.get("/{contract_id}", response_model=ContractRead, responses=problem_responses(401, 403, 404))
async def get_contract(contract_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> ContractRead:
    contract = await handlers.get_contract(contract_id, principal, uow)
    set_etag(response, contract.version)
    return _read(contract)


@router.post(
    "/{contract_id}/sign", response_model=ContractRead, responses=problem_responses(400, 401, 403, 404, 409, 412)
)
async def sign_contract(
    contract_id: uuid.UUID, request: Request, response: Response, principal: Writer, uow: Uow
) -> ContractRead:
    """SHORTCUT (platform issue): mark a draft signed, which enters the order automatically.

    The contracts issue replaces this with review, approval and e-signature by both parties.
    Send `If-Match` with the ETag you read to avoid signing a changed contract.
    """
    contract = await handlers.sign_contract_shortcut(contract_id, principal, uow, if_match=expected_version(request))
    set_etag(response, contract.version)
    return _read(contract)


def _read(contract) -> ContractRead:
    return ContractRead.model_validate(
        {
            **contract.__dict__,
            "status": contract.status.value,
            "subtotal_amount": contract.subtotal_amount,
            "total_amount": contract.total_amount,
            "lines": [{**line.__dict__, "amount": line.amount} for line in contract.lines],
            "contact": contract.contact.model_dump() if contract.contact else None,
        }
    )
