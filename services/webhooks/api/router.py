"""HTTP routes of the webhooks service (thin platform version: the event history)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.webhooks.api.schemas import EventRead
from services.webhooks.db import list_events
from shared.api import SafeStr
from shared.auth import ADMIN, INTEGRATION, Principal, require_roles
from shared.errors import problem_responses
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/events", tags=["event history"])

Integrator = Annotated[Principal, Depends(require_roles(ADMIN, INTEGRATION))]


@router.get("", response_model=Page[EventRead], responses=problem_responses(400, 401, 403))
async def event_history(
    request: Request,
    response: Response,
    principal: Integrator,
    uow: Annotated[UnitOfWork, Depends(get_uow)],
    page: Annotated[PageParams, Depends(page_params)],
    type: Annotated[SafeStr | None, Query(max_length=100, description="Only events of this type")] = None,
) -> Page[EventRead]:
    """Every event seen on the bus, oldest first: ERP systems catch up from here."""
    async with uow:
        rows, next_cursor = await list_events(uow, page, event_type=type)
    return paginated(request, response, [EventRead.model_validate(r._mapping) for r in rows], next_cursor)
