"""HTTP routes for sales teams and reps (who gets leads, where, how many)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.leads import handlers
from services.leads.api.schemas import SalesRepPut, SalesRepRead, SalesTeamPut, SalesTeamRead
from services.leads.domain import RepStatus, SalesRep
from shared.api import SafeStr
from shared.auth import ADMIN, REGIONAL_DIRECTOR, SALES_MANAGER, SALES_REP, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

team_router = APIRouter(prefix="/v1/sales-teams", tags=["sales teams"])
rep_router = APIRouter(prefix="/v1/sales-reps", tags=["sales reps"])

Reader = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Director = Annotated[Principal, Depends(require_roles(REGIONAL_DIRECTOR, ADMIN))]
Manager = Annotated[Principal, Depends(require_roles(SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
Id = Annotated[SafeStr, Path(min_length=1, max_length=255)]
PUT_PROBLEMS = problem_responses(400, 401, 403, 404, 412, 422)


@team_router.put("/{team_id}", response_model=SalesTeamRead, responses=PUT_PROBLEMS)
async def put_team(
    team_id: Id, body: SalesTeamPut, request: Request, response: Response, principal: Director, uow: Uow
) -> SalesTeamRead:
    """Create (201) or update a sales team: its region and its manager (who then sees and
    manages the leads of the team's reps). Admin, or a regional director within their region."""
    cmd = handlers.PutTeam(team_id=team_id, name=body.name, region=body.region, manager_id=body.manager_id)
    team, created = await handlers.put_team(cmd, principal, uow, if_match=expected_version(request))
    response.status_code = 201 if created else 200
    set_etag(response, team.version)
    return SalesTeamRead.model_validate(team.__dict__)


@team_router.get("", response_model=Page[SalesTeamRead], responses=problem_responses(400, 401, 403))
async def list_teams(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[SalesTeamRead]:
    """The teams the caller may see (a rep their own, a manager theirs, a director their region's)."""
    items, next_cursor = await handlers.list_teams(principal, uow, page)
    return paginated(request, response, [SalesTeamRead.model_validate(t.__dict__) for t in items], next_cursor)


@team_router.get("/{team_id}", response_model=SalesTeamRead, responses=problem_responses(401, 403, 404))
async def get_team(team_id: Id, response: Response, principal: Reader, uow: Uow) -> SalesTeamRead:
    team = await handlers.get_team(team_id, principal, uow)
    set_etag(response, team.version)
    return SalesTeamRead.model_validate(team.__dict__)


@rep_router.put("/{rep_id}", response_model=SalesRepRead, responses=PUT_PROBLEMS)
async def put_rep(
    rep_id: Annotated[SafeStr, Path(min_length=1, max_length=255, description="The rep's token subject")],
    body: SalesRepPut,
    request: Request,
    response: Response,
    principal: Manager,
    uow: Uow,
) -> SalesRepRead:
    """Create (201) or update a sales rep: team, region and industries (which leads the
    assignment rules may give them), capacity, and status (only `active` reps get leads).
    A new `team_id` moves the rep's open leads, accounts, open opportunities and their quotes to
    that team; won/lost opportunities and converted or merged leads stay with the old team.
    Admin; a regional director within their region; a manager for the teams they manage."""
    cmd = handlers.PutRep(
        rep_id=rep_id,
        name=body.name,
        team_id=body.team_id,
        region=body.region,
        industries=tuple(body.industries),
        capacity=body.capacity,
        status=body.status,
    )
    rep, created = await handlers.put_rep(cmd, principal, uow, if_match=expected_version(request))
    response.status_code = 201 if created else 200
    set_etag(response, rep.version)
    return _rep(rep)


@rep_router.get("", response_model=Page[SalesRepRead], responses=problem_responses(400, 401, 403))
async def list_reps(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    team_id: Annotated[SafeStr | None, Query(max_length=100)] = None,
    status: RepStatus | None = None,
) -> Page[SalesRepRead]:
    """The reps the caller may see, filtered by team or status."""
    items, next_cursor = await handlers.list_reps(
        principal, uow, page, team_id=team_id, status=status.value if status else None
    )
    return paginated(request, response, [_rep(r) for r in items], next_cursor)


@rep_router.get("/{rep_id}", response_model=SalesRepRead, responses=problem_responses(401, 403, 404))
async def get_rep(rep_id: Id, response: Response, principal: Reader, uow: Uow) -> SalesRepRead:
    rep = await handlers.get_rep(rep_id, principal, uow)
    set_etag(response, rep.version)
    return _rep(rep)


def _rep(rep: SalesRep) -> SalesRepRead:
    return SalesRepRead.model_validate({**rep.__dict__, "industries": list(rep.industries), "status": rep.status.value})
