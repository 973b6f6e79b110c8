"""Ticket, agent and closed-loop confirmation routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from starlette.responses import HTMLResponse

from services.service_desk import handlers
from services.service_desk.api.schemas import (
    AgentPut,
    AgentRead,
    TicketAssign,
    TicketCreate,
    TicketRead,
    TicketReopen,
    TicketResolve,
)
from services.service_desk.api.survey_page import PUBLIC, choose_language, parse_form, render
from services.service_desk.domain import Priority, TicketStatus
from shared.api import SafeStr
from shared.auth import ADMIN, INTEGRATION, SUPPORT_AGENT, SUPPORT_LEAD, Principal, require_roles
from shared.concurrency import set_etag
from shared.domain import InvalidTransition, NotFound
from shared.errors import problem_responses
from shared.events import ContactInfo
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

ticket_router = APIRouter(prefix="/v1/tickets", tags=["tickets"], route_class=IdempotentRoute)
agent_router = APIRouter(prefix="/v1/agents", tags=["agents"])
confirm_router = APIRouter(prefix="/v1/tickets/confirm", tags=["ticket confirmation (customers)"])

Support = Annotated[Principal, Depends(require_roles(SUPPORT_AGENT, SUPPORT_LEAD, ADMIN))]
Opener = Annotated[Principal, Depends(require_roles(SUPPORT_AGENT, SUPPORT_LEAD, ADMIN, INTEGRATION))]
Lead = Annotated[Principal, Depends(require_roles(SUPPORT_LEAD, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
TRANSITION_ERRORS = problem_responses(400, 401, 403, 404, 409, 412, 422)


@ticket_router.post(
    "", status_code=201, response_model=TicketRead, responses=problem_responses(400, 401, 403, 409, 422)
)
async def open_ticket(body: TicketCreate, response: Response, principal: Opener, uow: Uow) -> TicketRead:
    """Open a ticket; it goes to the agent of its group with the most room. Send `Idempotency-Key`."""
    fields = body.model_dump(exclude={"contact"})
    contact = ContactInfo(**body.contact.model_dump()) if body.contact else None
    ticket = await handlers.open_ticket(handlers.OpenTicket(**fields, contact=contact), uow)
    response.headers["Location"] = f"/v1/tickets/{ticket.id}"
    set_etag(response, ticket.version)
    return read_ticket(ticket)


@ticket_router.get("", response_model=Page[TicketRead], responses=problem_responses(400, 401, 403))
async def list_tickets(
    request: Request,
    response: Response,
    principal: Support,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[TicketStatus | None, Query()] = None,
    priority: Annotated[Priority | None, Query()] = None,
    assignee_id: Annotated[SafeStr | None, Query(max_length=200)] = None,
    customer_id: Annotated[SafeStr | None, Query(max_length=100)] = None,
    order_id: Annotated[uuid.UUID | None, Query()] = None,
    group: Annotated[SafeStr | None, Query(max_length=100)] = None,
) -> Page[TicketRead]:
    filters = {
        "status": status.value if status else None,
        "priority": priority.value if priority else None,
        "assignee_id": assignee_id,
        "customer_id": customer_id,
        "order_id": order_id,
        "group": group,
    }
    items, next_cursor = await handlers.list_tickets(principal, uow, page, **filters)
    return paginated(request, response, [read_ticket(t) for t in items], next_cursor)


@ticket_router.get("/{ticket_id}", response_model=TicketRead, responses=problem_responses(401, 403, 404))
async def get_ticket(ticket_id: uuid.UUID, response: Response, principal: Support, uow: Uow) -> TicketRead:
    ticket = await handlers.get_ticket(ticket_id, principal, uow)
    set_etag(response, ticket.version)
    return read_ticket(ticket)


async def _transition(
    ticket_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Principal,
    uow: UnitOfWork,
    action: str,
    **args,
) -> TicketRead:
    ticket = await handlers.change_ticket(ticket_id, principal, uow, action, if_match=expected_version(request), **args)
    set_etag(response, ticket.version)
    return read_ticket(ticket)


@ticket_router.post("/{ticket_id}/start", response_model=TicketRead, responses=TRANSITION_ERRORS)
async def start(ticket_id: uuid.UUID, request: Request, response: Response, principal: Support, uow: Uow):
    """The assignee starts work (the first response, if none yet)."""
    return await _transition(ticket_id, request, response, principal, uow, "start")


@ticket_router.post("/{ticket_id}/wait-for-customer", response_model=TicketRead, responses=TRANSITION_ERRORS)
async def wait_for_customer(ticket_id: uuid.UUID, request: Request, response: Response, principal: Support, uow: Uow):
    return await _transition(ticket_id, request, response, principal, uow, "wait_for_customer")


@ticket_router.post("/{ticket_id}/customer-replied", response_model=TicketRead, responses=TRANSITION_ERRORS)
async def customer_replied(ticket_id: uuid.UUID, request: Request, response: Response, principal: Support, uow: Uow):
    return await _transition(ticket_id, request, response, principal, uow, "customer_replied")


@ticket_router.post("/{ticket_id}/resolve", response_model=TicketRead, responses=TRANSITION_ERRORS)
async def resolve(
    ticket_id: uuid.UUID, body: TicketResolve, request: Request, response: Response, principal: Support, uow: Uow
):
    """Resolved: the customer gets a confirmation link (in `ticket.resolved`) and a CSAT survey."""
    return await _transition(
        ticket_id,
        request,
        response,
        principal,
        uow,
        "resolve",
        resolution=body.resolution,
        article_ids=body.article_ids,
    )


@ticket_router.post("/{ticket_id}/close", response_model=TicketRead, responses=TRANSITION_ERRORS)
async def close(ticket_id: uuid.UUID, request: Request, response: Response, principal: Support, uow: Uow):
    return await _transition(ticket_id, request, response, principal, uow, "close")


@ticket_router.post("/{ticket_id}/reopen", response_model=TicketRead, responses=TRANSITION_ERRORS)
async def reopen(
    ticket_id: uuid.UUID, body: TicketReopen, request: Request, response: Response, principal: Support, uow: Uow
):
    return await _transition(ticket_id, request, response, principal, uow, "reopen", reason=body.reason)


@ticket_router.post("/{ticket_id}/assign", response_model=TicketRead, responses=TRANSITION_ERRORS)
async def assign(
    ticket_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Lead,
    uow: Uow,
    body: Annotated[TicketAssign, Body()],
):
    """A support lead reassigns by hand (capacity and duty are the lead's call)."""
    return await _transition(ticket_id, request, response, principal, uow, "assign", agent_id=body.agent_id)


@agent_router.put("/{agent_id}", response_model=AgentRead, responses=problem_responses(400, 401, 403, 412, 422))
async def put_agent(
    agent_id: Annotated[SafeStr, ...], body: AgentPut, request: Request, response: Response, principal: Lead, uow: Uow
) -> AgentRead:
    """Create or update an agent (id = their token subject); queued tickets then go to whoever has room."""
    cmd = handlers.PutAgent(
        agent_id=agent_id, name=body.name, groups=tuple(body.groups), capacity=body.capacity, on_duty=body.on_duty
    )
    agent, created = await handlers.put_agent(cmd, uow, if_match=expected_version(request))
    response.status_code = 201 if created else 200
    set_etag(response, agent.version)
    return _agent(agent)


@agent_router.get("", response_model=Page[AgentRead], responses=problem_responses(400, 401, 403))
async def list_agents(
    request: Request,
    response: Response,
    principal: Support,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[AgentRead]:
    items, next_cursor = await handlers.list_agents(principal, uow, page)
    return paginated(
        request,
        response,
        [AgentRead.model_validate({**a.__dict__, "groups": list(a.groups)}) for a in items],
        next_cursor,
    )


@agent_router.get("/{agent_id}", response_model=AgentRead, responses=problem_responses(401, 403, 404))
async def get_agent(agent_id: Annotated[SafeStr, ...], response: Response, principal: Support, uow: Uow) -> AgentRead:
    agent = await handlers.get_agent(agent_id, principal, uow)
    set_etag(response, agent.version)
    return _agent(agent)


@confirm_router.get("/{token}", response_class=HTMLResponse, summary="Is it resolved? (customer)", openapi_extra=PUBLIC)
async def confirmation_page(token: str, request: Request, uow: Uow) -> HTMLResponse:
    lang = choose_language(request)
    try:
        ticket = await handlers.confirmation_ticket(token, uow)
    except NotFound:
        return render("ticket_message.html", lang, 404, kind="confirm_unknown")
    return render("ticket_confirm.html", lang, 200, ticket=ticket)


@confirm_router.post("/{token}", response_class=HTMLResponse, summary="The customer's answer", openapi_extra=PUBLIC)
async def confirm(token: str, request: Request, uow: Uow) -> HTMLResponse:
    form = parse_form(await request.body())
    lang = choose_language(request, form.get("lang"))
    if form.get("answer") not in ("resolved", "not_resolved"):
        return render("ticket_message.html", lang, 422, kind="confirm_unknown")
    resolved = form["answer"] == "resolved"
    try:
        await handlers.confirm_resolution(token, resolved=resolved, note=form.get("note"), uow=uow)
    except (NotFound, InvalidTransition):
        return render("ticket_message.html", lang, 404, kind="confirm_unknown")
    return render("ticket_message.html", lang, 200, kind="confirmed" if resolved else "reopened")


def read_ticket(ticket) -> TicketRead:
    return TicketRead.model_validate(
        {
            **ticket.__dict__,
            "status": ticket.status.value,
            "channel": ticket.channel.value,
            "type": ticket.type.value,
            "priority": ticket.priority.value,
            "complaint": ticket.is_complaint,
            "contact": ticket.contact.model_dump() if ticket.contact else None,
            "sla": handlers.sla_status(ticket),
        }
    )


def _agent(agent) -> AgentRead:
    return AgentRead.model_validate({**agent.__dict__, "groups": list(agent.groups)})
