"""The after-sales ticket and its state machine.

new → assigned → in_progress ⇄ waiting_on_customer → resolved → closed; a resolved or
closed ticket can be reopened (→ reopened, then assigned or worked on again). Any other
move is an :class:`InvalidTransition` (409).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.service_desk.domain.survey import SurveyLink
from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import (
    ContactInfo,
    TicketAssigned,
    TicketClosed,
    TicketOpened,
    TicketReopened,
    TicketResolved,
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

    @property
    def is_complaint(self) -> bool:
        return self.type == TicketType.COMPLAINT

    @classmethod
    def open(cls, *, id: uuid.UUID, number: str, created_at: datetime, **fields) -> Ticket:
        ticket = cls(id=id, number=number, created_at=created_at, updated_at=created_at, **fields)
        if not ticket.subject.strip():
            raise DomainError("a ticket needs a subject")
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
