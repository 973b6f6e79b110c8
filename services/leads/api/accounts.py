"""Account changes (classification, tier) and contacts; reads are in ``router.py``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from services.leads import handlers
from services.leads.api.router import Reader, Uow, _read
from services.leads.api.sales_schemas import AccountChange, ContactCreate, ContactRead, TimelineEntry
from services.leads.api.schemas import AccountRead
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], route_class=IdempotentRoute)
WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 412, 422)


@router.patch("/{account_id}", response_model=AccountRead, responses=WRITE_PROBLEMS)
async def change_account(
    account_id: uuid.UUID, body: AccountChange, request: Request, response: Response, principal: Reader, uow: Uow
) -> AccountRead:
    """Classify (*signed, letter_of_intent, key, progressing, potential, tracking*; emits
    `account.classified`) and/or tier the account (*high_value*: a follow-up reminder every
    week, *normal*: every 30 days, from now; emits `account.tier_changed`). `If-Match` honoured."""
    account = await handlers.update_account(
        account_id,
        principal,
        uow,
        classification=body.classification,
        tier=body.tier,
        reason=body.reason,
        if_match=expected_version(request),
    )
    set_etag(response, account.version)
    return _read(account)


@router.get("/{account_id}/contacts", response_model=Page[ContactRead], responses=problem_responses(400, 401, 403, 404))
async def list_contacts(
    account_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ContactRead]:
    items, next_cursor = await handlers.list_contacts(account_id, principal, uow, page)
    return paginated(request, response, [ContactRead.model_validate(c) for c in items], next_cursor)


@router.post(
    "/{account_id}/contacts",
    status_code=201,
    response_model=ContactRead,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def add_contact(
    account_id: uuid.UUID, body: ContactCreate, request: Request, response: Response, principal: Reader, uow: Uow
) -> ContactRead:
    """Another person at the account (phone to E.164, e-mail normalised as for leads)."""
    contact = await handlers.add_contact(
        account_id,
        principal,
        uow,
        name=body.name,
        title=body.title,
        phone=body.phone,
        email=body.email,
        phone_region=request.app.state.settings.phone_region,
    )
    response.headers["Location"] = f"/v1/accounts/{account_id}/contacts"
    return ContactRead.model_validate(contact)


@router.get(
    "/{account_id}/timeline", response_model=Page[TimelineEntry], responses=problem_responses(400, 401, 403, 404)
)
async def account_timeline(
    account_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[TimelineEntry]:
    """Newest first: the activities logged on the account and what the other services announced
    about the customer (contract signed, order delivered, ticket opened, survey completed)."""
    rows, next_cursor = await handlers.account_timeline(account_id, principal, uow, page)
    return paginated(request, response, [TimelineEntry.model_validate(r._mapping) for r in rows], next_cursor)
