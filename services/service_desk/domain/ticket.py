"""The after-sales ticket and its state machine.

new → assigned → in_progress ⇄ waiting_on_customer → resolved → closed; a resolved or
closed ticket can be reopened (→ reopened, then assigned or worked on again). Any other
move is an :class:`InvalidTransition` (409).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.service_desk.domain.calendar import BusinessCalendar
from services.service_desk.domain.sla import FIRST_RESPONSE, RESOLUTION, SlaClock
from services.service_desk.domain.survey import SurveyLink
from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import (
    ContactInfo,
    TicketAssigned,
    TicketClosed,
    TicketOpened,
    TicketReopened,
    TicketResolved,
    TicketSlaBreached,
    TicketSlaWarned,
)


class Channel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    WEB = "web"
    CHAT = "chat"
    API = "api"


class TicketType(StrEnum):
    INQUIRY = "inquiry"
    COMPLAINT = "complaint"
    REPAIR = "repair"
    WARRANTY_CLAIM = "warranty_claim"


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class TicketStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


OPEN_STATUSES = frozenset(
    {TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.WAITING_ON_CUSTOMER, TicketStatus.REOPENED}
)
WORKABLE = frozenset({TicketStatus.ASSIGNED, TicketStatus.REOPENED, TicketStatus.WAITING_ON_CUSTOMER})


@dataclass(eq=False)
class Ticket(Aggregate):
    id: uuid.UUID
    number: str
    subject: str
    description: str
    channel: Channel
    type: TicketType
    priority: Priority
    group: str
    customer_id: str
    customer_name: str
    created_at: datetime
    contact: ContactInfo | None = None
    order_id: uuid.UUID | None = None
    order_line_no: int | None = None  # the delivered line, for unserialised items
    serial_number: str | None = None
    category: str | None = None
    status: TicketStatus = TicketStatus.NEW
    assignee_id: str | None = None
    first_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    resolution: str | None = None
    close_reason: str | None = None
    reopen_count: int = 0
    updated_at: datetime | None = None
    # The customer's closed-loop link (hash only), set when resolved.
    confirmation_token_hash: str | None = None
    # SLA clocks by kind (first_response, resolution); reconciled with the state after each change.
    sla: dict[str, SlaClock] = field(default_factory=dict)
    # The customer waits for an answer (opened, replied or reopened, and no agent answer since).
    awaiting_response: bool = True
    # The latest ticket of the same account and category within 30 days, if any (a repeat issue).
    repeat_of: uuid.UUID | None = None
    # The customer tier whose SLA policy set the targets (None: the priority's policy).
    sla_tier: str | None = None
    # A warranty claim's coverage check: {"covered", "reason", "detail", "warranty_id"}.
    warranty_coverage: dict | None = None
    # Knowledge-base articles the agent linked when resolving.
    linked_article_ids: tuple[uuid.UUID, ...] = ()

    @property
    def is_complaint(self) -> bool:
        return self.type == TicketType.COMPLAINT

    @classmethod
    def open(
        cls,
        *,
        id: uuid.UUID,
        number: str,
        created_at: datetime,
        sla_targets: dict[str, float] | None = None,
        **fields,
    ) -> Ticket:
        """``sla_targets``: business seconds per clock kind, from the priority's policy."""
        ticket = cls(id=id, number=number, created_at=created_at, updated_at=created_at, **fields)
        if not ticket.subject.strip():
            raise DomainError("a ticket needs a subject")
        ticket.sla = {
            kind: SlaClock(kind=kind, target_seconds=seconds, running_since=created_at)
            for kind, seconds in (sla_targets or {}).items()
        }
        ticket.record(
            TicketOpened(
                ticket_id=ticket.id,
                ticket_number=ticket.number,
                channel=ticket.channel.value,
                ticket_type=ticket.type.value,
                priority=ticket.priority.value,
                group=ticket.group,
                subject=ticket.subject,
                customer_id=ticket.customer_id,
                order_id=ticket.order_id,
                serial_number=ticket.serial_number,
                complaint=ticket.is_complaint,
                repeat_issue=ticket.repeat_of is not None,
                opened_at=created_at,
            )
        )
        return ticket

    def _require(self, action: str, *allowed: TicketStatus) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"cannot {action} a ticket that is {self.status.value.replace('_', ' ')}")

    def assign(self, agent_id: str, *, now: datetime, by: str | None = None) -> None:
        """To an agent (automatically, or by a lead: ``by``); reassigning keeps the work state."""
        self._require(
            "assign",
            TicketStatus.NEW,
            TicketStatus.ASSIGNED,
            TicketStatus.IN_PROGRESS,
            TicketStatus.WAITING_ON_CUSTOMER,
            TicketStatus.REOPENED,
        )
        if agent_id == self.assignee_id:
            return
        previous, self.assignee_id = self.assignee_id, agent_id
        if self.status in (TicketStatus.NEW, TicketStatus.REOPENED):
            self.status = TicketStatus.ASSIGNED
        self.updated_at = now
        self.record(
            TicketAssigned(
                ticket_id=self.id,
                ticket_number=self.number,
                assignee_id=agent_id,
                previous_assignee_id=previous,
                group=self.group,
                assigned_by=by,
                assigned_at=now,
            )
        )

    def _responded(self, now: datetime) -> None:
        self.awaiting_response = False
        if self.first_responded_at is None:
            self.first_responded_at = now

    def start(self, now: datetime) -> None:
        self._require("start work on", TicketStatus.ASSIGNED, TicketStatus.REOPENED)
        self.status, self.updated_at = TicketStatus.IN_PROGRESS, now
        self._responded(now)
        self.version += 1

    def wait_for_customer(self, now: datetime) -> None:
        self._require("wait for the customer on", TicketStatus.IN_PROGRESS)
        self.status, self.updated_at = TicketStatus.WAITING_ON_CUSTOMER, now
        self._responded(now)
        self.version += 1

    def customer_replied(self, now: datetime) -> None:
        self._require("take a customer reply on", TicketStatus.WAITING_ON_CUSTOMER)
        self.status, self.updated_at = TicketStatus.IN_PROGRESS, now
        self.awaiting_response = True  # the reply resets the pending-response target
        self.version += 1

    def resolve(self, resolution: str, *, now: datetime, by: str, confirmation: SurveyLink | None = None) -> None:
        self._require("resolve", TicketStatus.IN_PROGRESS, TicketStatus.WAITING_ON_CUSTOMER)
        if not resolution.strip():
            raise DomainError("say how the ticket was resolved")
        self.status, self.resolution, self.resolved_at, self.updated_at = TicketStatus.RESOLVED, resolution, now, now
        self.confirmation_token_hash = confirmation.token_hash if confirmation else None
        self._responded(now)
        self.record(
            TicketResolved(
                ticket_id=self.id,
                ticket_number=self.number,
                customer_id=self.customer_id,
                contact=self.contact,
                resolution=resolution,
                resolved_by=by,
                resolved_at=now,
                confirmation_link=confirmation.url if confirmation else None,
            )
        )

    def close(self, *, now: datetime, reason: str, by: str | None = None) -> None:
        """``reason``: confirmed (by the customer), no_answer (after N days) or agent."""
        self._require("close", TicketStatus.RESOLVED)
        self.status, self.closed_at, self.close_reason, self.updated_at = TicketStatus.CLOSED, now, reason, now
        self.confirmation_token_hash = None  # the link is used up
        self.record(
            TicketClosed(ticket_id=self.id, ticket_number=self.number, reason=reason, closed_by=by, closed_at=now)
        )

    def reopen(self, *, now: datetime, reason: str, by: str | None = None) -> None:
        self._require("reopen", TicketStatus.RESOLVED, TicketStatus.CLOSED)
        self.status, self.updated_at = TicketStatus.REOPENED, now
        self.resolved_at = self.closed_at = self.close_reason = self.confirmation_token_hash = None
        self.reopen_count += 1
        self.awaiting_response = True
        self.record(
            TicketReopened(
                ticket_id=self.id,
                ticket_number=self.number,
                reason=reason,
                reopened_by=by,
                assignee_id=self.assignee_id,
                reopened_at=now,
            )
        )

    # -- SLA ------------------------------------------------------------------------------

    def reconcile_sla(self, calendar: BusinessCalendar, now: datetime) -> None:
        """Run, pause or stop each clock as the ticket's state says (idempotent).

        Response: runs while the customer awaits an answer, restarts on their reply.
        Resolution: paused while waiting on the customer, stopped when resolved or closed,
        resumed (with its time used so far) when reopened.
        """
        response = self.sla.get(FIRST_RESPONSE)
        if response is not None:
            if not self.awaiting_response:
                response.stop(calendar, now)
            elif response.met_at is not None:
                response.restart(now)
        resolution = self.sla.get(RESOLUTION)
        if resolution is not None:
            if self.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
                resolution.stop(calendar, now)
            elif self.status == TicketStatus.WAITING_ON_CUSTOMER:
                resolution.pause(calendar, now)
            else:
                resolution.met_at = None
                resolution.resume(now)

    def check_sla(
        self, kind: str, calendar: BusinessCalendar, now: datetime, *, warning_fraction: float
    ) -> list[TicketSlaWarned | TicketSlaBreached]:
        """Warn, then breach, each at most once per target, if the time used says so by now.
        Returns what fired (nothing if not due yet)."""
        fired: list[TicketSlaWarned | TicketSlaBreached] = []
        clock = self.sla.get(kind)
        if clock is None or not clock.running:
            return fired
        used = clock.used(calendar, now).total_seconds()
        deadline = clock.deadline(calendar)
        assert deadline is not None
        if clock.warned_at is None and used >= clock.target_seconds * warning_fraction:
            clock.warned_at = now
            fired.append(
                TicketSlaWarned(
                    ticket_id=self.id,
                    ticket_number=self.number,
                    priority=self.priority.value,
                    kind=kind,
                    deadline=deadline,
                    assignee_id=self.assignee_id,
                    group=self.group,
                    warned_at=now,
                )
            )
        if clock.breached_at is None and used >= clock.target_seconds:
            clock.breached_at = now
            fired.append(
                TicketSlaBreached(
                    ticket_id=self.id,
                    ticket_number=self.number,
                    priority=self.priority.value,
                    kind=kind,
                    target_seconds=clock.target_seconds,
                    deadline=deadline,
                    assignee_id=self.assignee_id,
                    group=self.group,
                    breached_at=now,
                )
            )
        for event in fired:
            self.record(event)
        return fired
