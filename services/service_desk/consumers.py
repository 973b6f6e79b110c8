"""What the service desk does with other services' events, and its timers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.service_desk.config import get_settings
from services.service_desk.db import (
    CustomerContracts,
    EscalationRepository,
    SurveyRepository,
    TicketRepository,
    WarrantyRepository,
)
from services.service_desk.domain import Survey, Ticket, TicketStatus, Warranty
from services.service_desk.domain.escalation import Escalation
from services.service_desk.links import new_survey_link
from shared.events import ContractSigned, ContractTerminated, OrderDelivered
from shared.inbox import Subscription
from shared.timers import cancel_timer, schedule_timer
from shared.uow import UnitOfWork

SURVEY_REMINDER = "survey.reminder"
TICKET_AUTO_CLOSE = "ticket.auto_close"
SLA_WARNING = "sla.warning"
SLA_BREACH = "sla.breach"


async def on_order_delivered(event: OrderDelivered, uow: UnitOfWork) -> None:
    """A delivery registers the warranty of its items and sends exactly one satisfaction survey."""
    now = datetime.now(UTC)
    await register_warranties(event, uow, now)
    await send_delivery_survey(event, uow, now)


async def on_contract_signed(event: ContractSigned, uow: UnitOfWork) -> None:
    """A signed contract counts toward the customer's service tier (its SLA policy), once per
    contract: the same contract arriving under another event id is not counted twice."""
    await CustomerContracts(uow).record(event)


async def on_contract_terminated(event: ContractTerminated, uow: UnitOfWork) -> None:
    """A terminated contract stops counting toward the customer's tier (tickets opened from now on;
    open tickets keep the SLA they were given). Once per contract, in whichever order it arrives."""
    await CustomerContracts(uow).record_termination(event)


async def register_warranties(event: OrderDelivered, uow: UnitOfWork, now: datetime) -> None:
    """Each delivered unit once, whether the event or the delivery arrives twice."""
    warranties = WarrantyRepository(uow)
    already = await warranties.units_for_order(event.order_id)
    for warranty in Warranty.register_delivery(event, now=now, already=already):
        await warranties.add(warranty)


async def send_delivery_survey(event: OrderDelivered, uow: UnitOfWork, now: datetime) -> None:
    surveys = SurveyRepository(uow)
    if await surveys.exists_for_order(event.order_id):
        return
    survey = Survey.for_delivery(event, survey_id=uuid.uuid4(), now=now, link=new_survey_link(now))
    await surveys.add(survey)
    due_at = now + timedelta(seconds=get_settings().survey_reminder_after_seconds)
    await schedule_timer(uow, SURVEY_REMINDER, key=str(survey.id), due_at=due_at)


async def remind_survey(payload: dict[str, Any], uow: UnitOfWork) -> None:
    surveys = SurveyRepository(uow)
    survey = await surveys.get(uuid.UUID(payload["_key"]), None, for_update=True)
    now = datetime.now(UTC)
    link = new_survey_link(now, expires_at=survey.expires_at) if survey is not None else None
    if survey is not None and survey.remind(now, link):
        await surveys.save(survey)


async def auto_close_ticket(payload: dict[str, Any], uow: UnitOfWork) -> None:
    """No answer to the closed-loop link within N days: the resolution stands, the ticket closes."""
    tickets = TicketRepository(uow)
    ticket = await tickets.get(uuid.UUID(payload["_key"]), None, for_update=True)
    if ticket is not None and ticket.status == TicketStatus.RESOLVED:
        ticket.close(now=datetime.now(UTC), reason="no_answer")
        await sync_sla_timers(ticket, uow)
        await tickets.save(ticket)


async def sync_sla_timers(ticket: Ticket, uow: UnitOfWork) -> None:
    """Reconcile the clocks with the ticket's state, and keep one warning and one breach timer
    per running clock at its current deadline (none while paused or met)."""
    settings = get_settings()
    calendar = settings.calendar()
    ticket.reconcile_sla(calendar, datetime.now(UTC))
    for kind, clock in ticket.sla.items():
        key = f"{ticket.id}:{kind}"
        warning_at = clock.warning_at(calendar, settings.sla_warning_fraction)
        if warning_at is not None and clock.warned_at is None:
            await schedule_timer(uow, SLA_WARNING, key=key, due_at=warning_at)
        else:
            await cancel_timer(uow, SLA_WARNING, key=key)
        deadline = clock.deadline(calendar)
        if deadline is not None and clock.breached_at is None:
            await schedule_timer(uow, SLA_BREACH, key=key, due_at=deadline)
        else:
            await cancel_timer(uow, SLA_BREACH, key=key)


class SlaNotDueYet(Exception):
    """A timer fired before its clock says so (clock skew): the poller retries it later."""


async def check_sla(payload: dict[str, Any], uow: UnitOfWork) -> None:
    """Warn or breach once, even when the worker was down at the deadline (the timer fires late).

    It re-reads the clock rather than trusting the timer: a clock paused or met since is left
    alone (its timers were cancelled in the same transaction anyway).
    """
    ticket_id, kind = payload["_key"].rsplit(":", 1)
    tickets = TicketRepository(uow)
    ticket = await tickets.get(uuid.UUID(ticket_id), None, for_update=True)
    clock = ticket.sla.get(kind) if ticket is not None else None
    if ticket is None or clock is None or not clock.running:
        return
    if clock.breached_at is not None:
        return  # warned and breached already: the other timer of the pair got here first
    settings = get_settings()
    fired = ticket.check_sla(
        kind, settings.calendar(), datetime.now(UTC), warning_fraction=settings.sla_warning_fraction
    )
    if not fired:
        raise SlaNotDueYet(f"the {kind} target of ticket {ticket.number} is not due yet")
    await tickets.save(ticket)
    escalations = EscalationRepository(uow)
    for event in fired:  # the warning to the assignee, the breach to the support lead's queue
        await escalations.add(Escalation.raised_by(event, id=uuid.uuid4()))


SUBSCRIPTIONS = [
    Subscription("service_desk.order_delivered", on_order_delivered, events=(OrderDelivered,)),
    Subscription("service_desk.contract_signed", on_contract_signed, events=(ContractSigned,)),
    Subscription("service_desk.contract_terminated", on_contract_terminated, events=(ContractTerminated,)),
]
TIMERS = {
    SURVEY_REMINDER: remind_survey,
    TICKET_AUTO_CLOSE: auto_close_ticket,
    SLA_WARNING: check_sla,
    SLA_BREACH: check_sla,
}
