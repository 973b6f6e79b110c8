"""HTTP routes for leads: capture (idempotent), list, read, qualification and owner override."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.leads import handlers
from services.leads.api.schemas import (
    LeadCreate,
    LeadQualification,
    LeadRead,
    OwnerOverride,
    OwnershipConflictRead,
    attribution_of,
)
from services.leads.config import LeadsSettings, assignment_policy, load_grading_rules
from services.leads.domain import Grade, Lead, LeadSource
from shared.api import Instant, SafeStr
from shared.auth import (
    ADMIN,
    INTEGRATION,
    MARKETING_DIRECTOR,
    REGIONAL_DIRECTOR,
    SALES_MANAGER,
    SALES_REP,
    Principal,
    require_roles,
)
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/leads", tags=["leads"], route_class=IdempotentRoute)

SALES = (SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, MARKETING_DIRECTOR, ADMIN)
Reader = Annotated[Principal, Depends(require_roles(*SALES))]
Registrar = Annotated[Principal, Depends(require_roles(*SALES, INTEGRATION))]
Manager = Annotated[Principal, Depends(require_roles(SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 412, 422)


def _settings(request: Request) -> LeadsSettings:
    return request.app.state.settings


def _read(lead: Lead, response: Response) -> LeadRead:
    set_etag(response, lead.version)
    a = lead.attribution
    return LeadRead.model_validate(
        {
            **lead.__dict__,
            **{name: getattr(a, name) for name in a.__slots__},
            "source": lead.source.value,
            "decision_timeframe": lead.decision_timeframe.value,
            "need_fit": lead.need_fit.value,
            "grade": lead.grade.value,
        }
    )


@router.post("", status_code=201, response_model=LeadRead, responses=problem_responses(400, 401, 403, 409, 422))
async def create_lead(
    body: LeadCreate, request: Request, response: Response, principal: Registrar, uow: Uow
) -> LeadRead:
    """Register a lead. Phone, e-mail, USCC and company name are normalised and matched against
    earlier leads and accounts: a match links the new lead to them (`duplicate_of_lead_id`,
    `matched_account_id`) and the customer stays with the rep who registered it first
    (`ownership_conflict` when that is someone else; a sales manager can override). Graded A/B/C
    by the current grading rules. Emits `lead.created`."""
    settings = _settings(request)
    cmd = handlers.RegisterLead(
        source=body.source,
        company_name=body.company_name,
        contact_name=body.contact_name,
        phone=body.phone,
        email=body.email,
        uscc=body.uscc,
        region=body.region,
        industry=body.industry,
        attribution=attribution_of(body),
        budget=body.budget,
        currency=body.currency,
        decision_timeframe=body.decision_timeframe,
        need_fit=body.need_fit,
    )
    lead = await handlers.register_lead(
        cmd,
        principal,
        uow,
        rules=load_grading_rules(settings.grading_rules_path),
        phone_region=settings.phone_region,
        policy=assignment_policy(settings),
    )
    response.headers["Location"] = f"/v1/leads/{lead.id}"
    return _read(lead, response)


@router.get("", response_model=Page[LeadRead], responses=problem_responses(400, 401, 403))
async def list_leads(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    source: LeadSource | None = None,
    grade: Grade | None = None,
    region: Annotated[SafeStr | None, Query(max_length=100)] = None,
    campaign: Annotated[SafeStr | None, Query(max_length=200)] = None,
    owner_id: Annotated[SafeStr | None, Query(max_length=255)] = None,
    duplicate_of_lead_id: Annotated[uuid.UUID | None, Query(description="The duplicates of this lead")] = None,
    created_from: Annotated[Instant | None, Query(description="Created at or after (with offset)")] = None,
    created_before: Annotated[Instant | None, Query(description="Created before (with offset)")] = None,
) -> Page[LeadRead]:
    """The leads the caller may see, oldest first, filtered."""
    items, next_cursor = await handlers.list_leads(
        principal,
        uow,
        page,
        source=source.value if source else None,
        grade=grade.value if grade else None,
        region=region,
        campaign=campaign,
        owner_id=owner_id,
        duplicate_of_lead_id=duplicate_of_lead_id,
        created_from=created_from,
        created_before=created_before,
    )
    return paginated(request, response, [_read(lead, Response()) for lead in items], next_cursor)


@router.get("/{lead_id}", response_model=LeadRead, responses=problem_responses(401, 403, 404))
async def get_lead(lead_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> LeadRead:
    return _read(await handlers.get_lead(lead_id, principal, uow), response)


@router.get(
    "/{lead_id}/ownership-conflicts",
    response_model=list[OwnershipConflictRead],
    responses=problem_responses(401, 403, 404),
)
async def list_ownership_conflicts(lead_id: uuid.UUID, principal: Reader, uow: Uow) -> list[OwnershipConflictRead]:
    """The keys by which another rep had registered this lead's customer first (a handful at most)."""
    rows = await handlers.lead_conflicts(lead_id, principal, uow)
    return [OwnershipConflictRead.model_validate(r) for r in rows]


@router.put("/{lead_id}/qualification", response_model=LeadRead, responses=WRITE_PROBLEMS)
async def qualify_lead(
    lead_id: uuid.UUID, body: LeadQualification, request: Request, response: Response, principal: Reader, uow: Uow
) -> LeadRead:
    """Set budget, decision timeframe and need fit; the grade is recomputed (`lead.graded` when
    it changes). `If-Match` with the lead's ETag guards against lost updates."""
    lead = await handlers.qualify_lead(
        lead_id,
        principal,
        uow,
        rules=load_grading_rules(_settings(request).grading_rules_path),
        budget=body.budget,
        currency=body.currency,
        timeframe=body.decision_timeframe,
        need_fit=body.need_fit,
        if_match=expected_version(request),
    )
    return _read(lead, response)


@router.post("/{lead_id}/owner", response_model=LeadRead, responses=WRITE_PROBLEMS)
async def override_owner(
    lead_id: uuid.UUID, body: OwnerOverride, request: Request, response: Response, principal: Manager, uow: Uow
) -> LeadRead:
    """A sales manager overrides the first-registered owner, with a reason: the lead and its
    customer's keys go to `owner_id`, the lead's ownership conflicts are resolved.
    Emits `lead.owner_changed`."""
    lead = await handlers.override_owner(
        lead_id,
        principal,
        uow,
        owner_id=body.owner_id,
        reason=body.reason,
        if_match=expected_version(request),
    )
    return _read(lead, response)
