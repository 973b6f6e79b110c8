"""HTTP routes of the leads service (thin platform version: accounts only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.leads import handlers
from services.leads.api.schemas import AccountRead
from shared.api import SafeStr
from shared.auth import ADMIN, REGIONAL_DIRECTOR, SALES_MANAGER, SALES_REP, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

Reader = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.get("", response_model=Page[AccountRead], responses=problem_responses(400, 401, 403))
async def list_accounts(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    customer_id: Annotated[SafeStr | None, Query(max_length=64)] = None,
    classification: Annotated[SafeStr | None, Query(max_length=32)] = None,
) -> Page[AccountRead]:
    items, next_cursor = await handlers.list_accounts(
        principal, uow, page, customer_id=customer_id, classification=classification
    )
    return paginated(request, response, [_read(a) for a in items], next_cursor)


@router.get("/{account_id}", response_model=AccountRead, responses=problem_responses(401, 403, 404))
async def get_account(account_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> AccountRead:
    account = await handlers.get_account(account_id, principal, uow)
    set_etag(response, account.version)
    return _read(account)


def _read(account) -> AccountRead:
    return AccountRead.model_validate({**account.__dict__, "classification": account.classification.value})


def sales_routers() -> list[APIRouter]:
    """Accounts (changes, contacts), conversion, opportunities, quotes, targets, reports."""
    from services.leads.api import accounts, opportunities, quotes, reports, targets

    return [
        accounts.router,
        opportunities.conversion_router,
        opportunities.router,
        quotes.opportunity_quotes,
        quotes.router,
        targets.router,
        reports.router,
    ]


def capture_routers() -> list[APIRouter]:
    """Sales reps and teams, the public pool and assignment, activities."""
    from services.leads.api import activities, forms, imports, interactions, merge, pool, reps

    return [
        reps.team_router,
        reps.rep_router,
        pool.pool_router,
        pool.lead_router,
        activities.router,
        forms.router,
        interactions.router,
        merge.router,
        imports.router,
    ]
