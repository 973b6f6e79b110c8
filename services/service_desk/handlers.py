"""Service desk commands and queries. Each opens the unit of work (and commits when it writes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from services.service_desk.config import get_settings
from services.service_desk.consumers import SURVEY_REMINDER, TICKET_AUTO_CLOSE, sync_sla_timers
from services.service_desk.db import (
    AgentRepository,
    ArticleRepository,
    CustomerContracts,
    EscalationRepository,
    RepairRepository,
    SurveyRepository,
    TicketRepository,
    WarrantyRepository,
)
from services.service_desk.db import tickets as tickets_table
from services.service_desk.domain import (
    Agent,
    Article,
    Channel,
    Coverage,
    Priority,
    Survey,
    Ticket,
    TicketStatus,
    TicketType,
    Warranty,
    check_coverage,
    choose_agent,
)
from services.service_desk.domain.customer import customer_tier
from services.service_desk.domain.escalation import Escalation
from services.service_desk.domain.repair import Part, Repair
from services.service_desk.links import (
    hash_token,
    new_confirmation_link,
    new_repair_link,
    new_survey_link,
    well_formed,
)
from shared.auth import Principal
from shared.domain import DomainError, NotFound, PreconditionFailed
from shared.events import ContactInfo
from shared.pagination import PageParams
from shared.timers import cancel_timer, schedule_timer
from shared.uow import UnitOfWork


async def get_survey(survey_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Survey:
    async with uow:
        return await SurveyRepository(uow).get_visible(survey_id, principal)


@dataclass(frozen=True)
class AnswerSurvey:
    token: str
    csat: int | None
    nps: int | None
    comment: str | None


async def open_survey(token: str, uow: UnitOfWork) -> Survey:
    """The survey behind a customer's link, if it may still be answered (else the reason, raised)."""
    async with uow:
        survey = await _by_token(token, SurveyRepository(uow))
    survey.check_open(datetime.now(UTC))
    return survey


async def answer_survey(cmd: AnswerSurvey, uow: UnitOfWork) -> Survey:
    """One answer per link: the row lock makes a second, concurrent answer see the first."""
    async with uow:
        surveys = SurveyRepository(uow)
        survey = await _by_token(cmd.token, surveys, for_update=True)
        survey.answer(csat=cmd.csat, nps=cmd.nps, comment=cmd.comment, now=datetime.now(UTC))
        await surveys.save(survey)
        await cancel_timer(uow, SURVEY_REMINDER, key=str(survey.id))
        await uow.commit()
    return survey


async def _by_token(token: str, surveys: SurveyRepository, *, for_update: bool = False) -> Survey:
    survey = None
    if well_formed(token):
        survey = await surveys.by_token_hash(hash_token(token), for_update=for_update)
    if survey is None:
        raise NotFound("no survey has this link")
    return survey


async def list_surveys(
    principal: Principal, uow: UnitOfWork, page: PageParams, *, order_id: uuid.UUID | None = None
) -> tuple[list[Survey], str | None]:
    async with uow:
        return await SurveyRepository(uow).list(principal, page, filters={"order_id": order_id})


async def list_warranties(
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    serial_number: str | None = None,
    order_id: uuid.UUID | None = None,
) -> tuple[list[Warranty], str | None]:
    async with uow:
        return await WarrantyRepository(uow).list(
            principal, page, filters={"serial_number": serial_number, "order_id": order_id}
        )


async def get_warranty(warranty_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Warranty:
    async with uow:
        return await WarrantyRepository(uow).get_visible(warranty_id, principal)


async def check_warranty(
    principal: Principal,
    uow: UnitOfWork,
    *,
    at: datetime,
    serial_number: str | None = None,
    order_id: uuid.UUID | None = None,
    line_no: int | None = None,
) -> Coverage:
    """Coverage of a serial number, or of an order line, at a moment (a claim's failure date)."""
    if serial_number is not None:
        what = f"serial number {serial_number}"
    elif line_no is not None:
        what = f"line {line_no} of order {order_id}"
    else:
        what = f"order {order_id}"
    async with uow:
        candidates = await WarrantyRepository(uow).matching(
            principal, serial_number=serial_number, order_id=order_id, line_no=line_no
        )
    return check_coverage(candidates, at, what=what)


BUSINESS_TZ = ZoneInfo("Asia/Shanghai")  # ticket numbers carry the business year
REPEAT_WINDOW_DAYS = 30

# -- tickets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenTicket:
    subject: str
    description: str
    channel: Channel
    type: TicketType
    priority: Priority
    customer_id: str
    customer_name: str
    group: str | None = None
    category: str | None = None
    contact: ContactInfo | None = None
    order_id: uuid.UUID | None = None
    order_line_no: int | None = None
    serial_number: str | None = None


async def open_ticket(cmd: OpenTicket, uow: UnitOfWork) -> Ticket:
    """Open and, when an agent of its group has room, assign it in the same transaction."""
    settings = get_settings()
    async with uow:
        tickets = TicketRepository(uow)
        now = datetime.now(UTC)
        fields = dict(cmd.__dict__)
        fields["group"] = cmd.group or settings.ticket_type_groups.get(cmd.type.value, "general")
        # Without a category, the type is what "the same issue" means.
        fields["category"] = cmd.category or cmd.type.value
        fields["repeat_of"] = await tickets.latest_similar(
            cmd.customer_id, fields["category"], now - timedelta(days=REPEAT_WINDOW_DAYS)
        )
        if cmd.type == TicketType.WARRANTY_CLAIM and (cmd.serial_number or cmd.order_id):
            fields["warranty_coverage"] = await _claim_coverage(cmd, uow, now)
        fields["sla_tier"] = customer_tier(
            await CustomerContracts(uow).signed_totals(cmd.customer_id),
            settings.customer_tier_minimums,
            settings.customer_tier_currency,
        )
        ticket = Ticket.open(
            id=uuid.uuid4(),
            number=await tickets.next_number(now.astimezone(BUSINESS_TZ).year),
            created_at=now,
            sla_targets=settings.sla_targets(cmd.priority.value, fields["sla_tier"]),
            **fields,
        )
        await sync_sla_timers(ticket, uow)  # assignment does not move the clocks
        await auto_assign(ticket, uow, now)  # last: the group stays locked until the commit
        await tickets.add(ticket)
        await uow.commit()
    return ticket


async def _claim_coverage(cmd: OpenTicket, uow: UnitOfWork, now: datetime) -> dict:
    """A warranty claim says at once whether the unit is covered, and why."""
    coverage = await unit_coverage(
        uow, cmd.customer_id, now, serial_number=cmd.serial_number, order_id=cmd.order_id, line_no=cmd.order_line_no
    )
    return {
        "covered": coverage.covered,
        "reason": coverage.reason,
        "detail": coverage.detail,
        "warranty_id": str(coverage.warranty.id) if coverage.warranty else None,
    }


async def unit_coverage(
    uow: UnitOfWork,
    customer_id: str,
    at: datetime,
    *,
    serial_number: str | None,
    order_id: uuid.UUID | None,
    line_no: int | None,
) -> Coverage:
    """A customer's unit by serial number, else by order line (unserialised items), else by order;
    another customer's unit is not theirs."""
    if serial_number:
        candidates = await WarrantyRepository(uow).matching(None, serial_number=serial_number)
        what = f"serial number {serial_number}"
    else:
        candidates = await WarrantyRepository(uow).matching(None, order_id=order_id, line_no=line_no)
        what = f"order {order_id}" if line_no is None else f"line {line_no} of order {order_id}"
    return check_coverage([w for w in candidates if w.customer_id == customer_id], at, what=what)


async def auto_assign(ticket: Ticket, uow: UnitOfWork, now: datetime) -> bool:
    agents = await AgentRepository(uow).lock_group(ticket.group)
    loads = await TicketRepository(uow).open_counts([a.id for a in agents])
    chosen = choose_agent(agents, loads, ticket.group)
    if chosen is None:
        return False  # stays new in the group's queue until someone has room
    ticket.assign(chosen.id, now=now)
    return True


async def assign_queued(group: str, uow: UnitOfWork, now: datetime, *, limit: int = 100) -> int:
    """Give the group's unassigned tickets (oldest first) to agents who now have room."""
    queued = await uow.execute(
        select(tickets_table.c.id)
        .where(tickets_table.c.group == group, tickets_table.c.status == TicketStatus.NEW.value)
        .order_by(tickets_table.c.created_at, tickets_table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    repo = TicketRepository(uow)
    assigned = 0
    for (ticket_id,) in queued.all():
        ticket = await repo.get_for_change(ticket_id, None)
        if not await auto_assign(ticket, uow, now):
            break
        await repo.save(ticket)
        assigned += 1
    return assigned


async def get_ticket(ticket_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Ticket:
    async with uow:
        return await TicketRepository(uow).get_visible(ticket_id, principal)


async def list_tickets(
    principal: Principal, uow: UnitOfWork, page: PageParams, **filters
) -> tuple[list[Ticket], str | None]:
    async with uow:
        return await TicketRepository(uow).list(principal, page, filters=filters)


async def change_ticket(
    ticket_id: uuid.UUID, principal: Principal, uow: UnitOfWork, action: str, *, if_match: int | None = None, **args
) -> Ticket:
    """A state transition by an agent or lead: start, wait_for_customer, customer_replied,
    resolve, close, reopen, assign."""
    async with uow:
        tickets = TicketRepository(uow)
        ticket = await tickets.get_for_change(ticket_id, principal, if_match=if_match)
        now = datetime.now(UTC)
        if action == "assign":
            agent = await AgentRepository(uow).get(args["agent_id"], None)  # type: ignore[arg-type]
            if agent is None:
                raise NotFound(f"no agent {args['agent_id']}")
            ticket.assign(agent.id, now=now, by=principal.sub)
        elif action == "resolve":
            linked = tuple(dict.fromkeys(args.get("article_ids") or ()))
            if linked and not await ArticleRepository(uow).all_published(linked):
                raise DomainError("link only published knowledge-base articles")
            ticket.linked_article_ids = linked
            await _resolve(ticket, uow, now, resolution=args["resolution"], by=principal.sub)
        elif action == "close":
            ticket.close(now=now, reason="agent", by=principal.sub)
            await cancel_timer(uow, TICKET_AUTO_CLOSE, key=str(ticket.id))
        elif action == "reopen":
            ticket.reopen(now=now, reason=args["reason"], by=principal.sub)
            await cancel_timer(uow, TICKET_AUTO_CLOSE, key=str(ticket.id))
        else:
            getattr(ticket, action)(now)
        await sync_sla_timers(ticket, uow)
        await tickets.save(ticket)
        await uow.commit()
    return ticket


async def _resolve(ticket: Ticket, uow: UnitOfWork, now: datetime, *, resolution: str, by: str) -> None:
    """Resolved: the customer gets a confirmation link and a CSAT survey; no answer closes it later."""
    ticket.resolve(resolution, now=now, by=by, confirmation=new_confirmation_link(now))
    settings = get_settings()
    await schedule_timer(
        uow,
        TICKET_AUTO_CLOSE,
        key=str(ticket.id),
        due_at=now + timedelta(seconds=settings.ticket_auto_close_after_seconds),
    )
    surveys = SurveyRepository(uow)
    if not await surveys.exists_for_ticket(ticket.id):  # a reopened and re-resolved ticket is surveyed once
        survey = Survey.for_ticket(
            survey_id=uuid.uuid4(),
            ticket_id=ticket.id,
            customer_id=ticket.customer_id,
            customer_name=ticket.customer_name,
            contact=ticket.contact,
            owner_id=by,
            now=now,
            link=new_survey_link(now),
            team=ticket.group,
        )
        await surveys.add(survey)
        await schedule_timer(
            uow,
            SURVEY_REMINDER,
            key=str(survey.id),
            due_at=now + timedelta(seconds=settings.survey_reminder_after_seconds),
        )


async def confirm_resolution(token: str, *, resolved: bool, note: str | None, uow: UnitOfWork) -> Ticket:
    """The customer's answer through the closed-loop link: confirmed closes, not fixed reopens."""
    async with uow:
        tickets = TicketRepository(uow)
        ticket = await tickets.by_confirmation_hash(hash_token(token)) if well_formed(token) else None
        if ticket is None:
            raise NotFound("no ticket awaits confirmation with this link")
        now = datetime.now(UTC)
        if resolved:
            ticket.close(now=now, reason="confirmed", by="customer")
        else:
            ticket.reopen(now=now, reason=(note or "").strip() or "the customer says it is not resolved", by="customer")
        await cancel_timer(uow, TICKET_AUTO_CLOSE, key=str(ticket.id))
        await sync_sla_timers(ticket, uow)
        await tickets.save(ticket)
        await uow.commit()
    return ticket


async def confirmation_ticket(token: str, uow: UnitOfWork) -> Ticket:
    async with uow:
        ticket = await TicketRepository(uow).by_confirmation_hash(hash_token(token)) if well_formed(token) else None
    if ticket is None:
        raise NotFound("no ticket awaits confirmation with this link")
    return ticket


# -- agents -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PutAgent:
    agent_id: str
    name: str
    groups: tuple[str, ...]
    capacity: int
    on_duty: bool


async def put_agent(cmd: PutAgent, uow: UnitOfWork, *, if_match: int | None = None) -> tuple[Agent, bool]:
    """Create or update an agent; then queued tickets of their groups go to whoever has room."""
    async with uow:
        agents = AgentRepository(uow)
        now = datetime.now(UTC)
        agent = await agents.get(cmd.agent_id, None, for_update=True)  # type: ignore[arg-type]
        created = agent is None
        if agent is None:
            agent = Agent(id=cmd.agent_id, name=cmd.name, created_at=now)
            agent.update(name=cmd.name, groups=cmd.groups, capacity=cmd.capacity, on_duty=cmd.on_duty)
            await agents.add(agent)
        else:
            if if_match is not None and if_match != agent.version:
                raise PreconditionFailed("the agent has changed since you read it")
            agent.update(name=cmd.name, groups=cmd.groups, capacity=cmd.capacity, on_duty=cmd.on_duty)
            await agents.save(agent)
        if agent.on_duty:
            for group in agent.groups:
                await assign_queued(group, uow, now)
        await uow.commit()
    return agent, created


async def list_agents(principal: Principal, uow: UnitOfWork, page: PageParams) -> tuple[list[Agent], str | None]:
    async with uow:
        return await AgentRepository(uow).list(principal, page)


async def get_agent(agent_id: str, principal: Principal, uow: UnitOfWork) -> Agent:
    async with uow:
        return await AgentRepository(uow).get_visible(agent_id, principal)  # type: ignore[arg-type]


def sla_status(ticket: Ticket, now: datetime | None = None) -> list[dict]:
    """Each clock's target, time used and left, deadline, and whether it is paused, for display."""
    calendar, now = get_settings().calendar(), now or datetime.now(UTC)
    return [
        {
            "kind": kind,
            "target_seconds": clock.target_seconds,
            "used_seconds": round(clock.used(calendar, now).total_seconds(), 3),
            "left_seconds": round(clock.left(calendar, now).total_seconds(), 3),
            "deadline": clock.deadline(calendar),
            "paused": clock.paused,
            "met_at": clock.met_at,
            "warned_at": clock.warned_at,
            "breached_at": clock.breached_at,
        }
        for kind, clock in ticket.sla.items()
    ]


# -- knowledge base -----------------------------------------------------------------------


async def draft_article(*, category: str, title: str, body: str, principal: Principal, uow: UnitOfWork) -> Article:
    async with uow:
        article = Article.draft(
            id=uuid.uuid4(), category=category, title=title, body=body, author_id=principal.sub, now=datetime.now(UTC)
        )
        await ArticleRepository(uow).add(article)
        await uow.commit()
    return article


async def edit_article(
    article_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None, **fields
) -> Article:
    async with uow:
        articles = ArticleRepository(uow)
        article = await articles.get_for_change(article_id, principal, if_match=if_match)
        article.edit(now=datetime.now(UTC), **fields)
        await articles.save(article)
        await uow.commit()
    return article


async def publish_article(
    article_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None
) -> Article:
    return await _change_article(article_id, principal, uow, if_match, "publish")


async def archive_article(
    article_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None
) -> Article:
    return await _change_article(article_id, principal, uow, if_match, "archive")


async def _change_article(
    article_id: uuid.UUID, principal: Principal, uow: UnitOfWork, if_match: int | None, action: str
) -> Article:
    async with uow:
        articles = ArticleRepository(uow)
        article = await articles.get_for_change(article_id, principal, if_match=if_match)
        now = datetime.now(UTC)
        if action == "publish":
            article.publish(by=principal.sub, now=now)
        else:
            article.archive(now=now)
        await articles.save(article)
        if action == "publish":
            await articles.add_version(article)
        await uow.commit()
    return article


async def get_article(article_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> tuple[Article, list]:
    async with uow:
        articles = ArticleRepository(uow)
        article = await articles.get_visible(article_id, principal)
        return article, await articles.versions(article_id)


async def list_articles(principal: Principal, uow: UnitOfWork, page: PageParams, **filters):
    async with uow:
        return await ArticleRepository(uow).list(principal, page, filters=filters)


async def search_articles(text: str, uow: UnitOfWork, *, category: str | None = None, limit: int = 10):
    async with uow:
        return await ArticleRepository(uow).search(text, category=category, limit=limit)


async def suggest_articles(ticket_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, limit: int = 5):
    """Published articles for a ticket, from its subject (every term, then any of them)."""
    async with uow:
        ticket = await TicketRepository(uow).get_visible(ticket_id, principal)
        articles = ArticleRepository(uow)
        hits = await articles.search(ticket.subject, limit=limit)
        if not hits:
            hits = await articles.search(ticket.subject, limit=limit, match_any=True)
        return hits


# -- repairs ------------------------------------------------------------------------------


async def report_repair(ticket_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Repair:
    """A repair for a repair or warranty-claim ticket; free of charge if the unit is covered now."""
    async with uow:
        ticket = await TicketRepository(uow).get_visible(ticket_id, principal)
        if ticket.type not in (TicketType.REPAIR, TicketType.WARRANTY_CLAIM):
            raise DomainError("only repair and warranty-claim tickets have repairs")
        now = datetime.now(UTC)
        covered = False
        if ticket.serial_number or (ticket.order_id and ticket.order_line_no):  # a unit, not a whole order
            coverage = await unit_coverage(
                uow,
                ticket.customer_id,
                now,
                serial_number=ticket.serial_number,
                order_id=ticket.order_id,
                line_no=ticket.order_line_no,
            )
            covered = coverage.covered
        repair = Repair(
            id=uuid.uuid4(),
            ticket_id=ticket.id,
            ticket_number=ticket.number,
            customer_id=ticket.customer_id,
            serial_number=ticket.serial_number,
            under_warranty=covered,
            currency="CNY",
            created_at=now,
            updated_at=now,
        )
        repair.version = 1
        await RepairRepository(uow).add(repair)
        await uow.commit()
    return repair


async def change_repair(
    repair_id: uuid.UUID, principal: Principal, uow: UnitOfWork, action: str, *, if_match: int | None = None, **args
) -> Repair:
    """inspect, start_repair (findings, parts, labour), complete, accept, reject (reason)."""
    async with uow:
        repairs = RepairRepository(uow)
        repair = await repairs.get_for_change(repair_id, principal, if_match=if_match)
        now = datetime.now(UTC)
        if action == "start_repair":
            parts = tuple(Part(**part) for part in args["parts"])
            repair.start_repair(findings=args["findings"], parts=parts, labour_cost=args["labour_cost"], now=now)
        elif action == "complete":
            ticket = await TicketRepository(uow).get(repair.ticket_id, None)
            repair.complete(now, link=new_repair_link(now), contact=ticket.contact if ticket else None)
        elif action == "accept":
            repair.accept(now, by=principal.sub)
        elif action == "reject":
            repair.reject(args["reason"], now)
        else:
            getattr(repair, action)(now)
        await repairs.save(repair)
        await uow.commit()
    return repair


async def get_repair(repair_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Repair:
    async with uow:
        return await RepairRepository(uow).get_visible(repair_id, principal)


async def list_repairs(principal: Principal, uow: UnitOfWork, page: PageParams, *, ticket_id: uuid.UUID | None):
    async with uow:
        return await RepairRepository(uow).list(principal, page, filters={"ticket_id": ticket_id})


# -- escalations --------------------------------------------------------------------------


async def list_escalations(principal: Principal, uow: UnitOfWork, page: PageParams, **filters):
    async with uow:
        return await EscalationRepository(uow).list(principal, page, filters=filters)


async def get_escalation(escalation_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Escalation:
    async with uow:
        return await EscalationRepository(uow).get_visible(escalation_id, principal)


async def acknowledge_escalation(
    escalation_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None, note: str | None
) -> Escalation:
    async with uow:
        escalations = EscalationRepository(uow)
        escalation = await escalations.get_for_change(escalation_id, principal, if_match=if_match)
        escalation.acknowledge(by=principal.sub, now=datetime.now(UTC), note=note)
        await escalations.save(escalation)
        await uow.commit()
    return escalation


async def open_repair_acceptance(token: str, uow: UnitOfWork) -> Repair:
    """The repair behind a customer's acceptance link, if it may still be answered (else why, raised)."""
    async with uow:
        repair = await _repair_by_token(token, RepairRepository(uow))
    repair.check_link_open(datetime.now(UTC))
    return repair


async def answer_repair(token: str, uow: UnitOfWork, *, accepted: bool, reason: str | None) -> Repair:
    """The customer accepts, or rejects back to repairing; the row lock makes a second answer see the first."""
    async with uow:
        repairs = RepairRepository(uow)
        repair = await _repair_by_token(token, repairs, for_update=True)
        repair.customer_answer(accepted=accepted, reason=reason, now=datetime.now(UTC))
        await repairs.save(repair)
        await uow.commit()
    return repair


async def _repair_by_token(token: str, repairs: RepairRepository, *, for_update: bool = False) -> Repair:
    repair = await repairs.by_acceptance_hash(hash_token(token), for_update=for_update) if well_formed(token) else None
    if repair is None:
        raise NotFound("no repair awaits acceptance with this link")
    return repair
