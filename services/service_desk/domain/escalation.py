"""Escalations: what an SLA warning or breach asks someone to do, kept until they acknowledge it.

A warning goes to the ticket's assignee (time is running out); a breach escalates to the
support lead, whose queue lists the open breaches until a lead acknowledges each one. The
events (``ticket.sla_warned``, ``ticket.sla_breached``) tell other systems; this is the work
item people see.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain import Aggregate, InvalidTransition
from shared.events import TicketSlaBreached, TicketSlaWarned


class EscalationLevel(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


class EscalationStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


SUPPORT_LEAD = "support_lead"
ASSIGNEE = "assignee"


@dataclass(eq=False)
class Escalation(Aggregate):
    id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_number: str
    kind: str  # first_response or resolution
    level: EscalationLevel
    escalated_to: str  # support_lead (breach) or assignee (warning)
    priority: str
    group: str
    assignee_id: str | None
    deadline: datetime
    created_at: datetime
    status: EscalationStatus = EscalationStatus.OPEN
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    note: str | None = None

    @classmethod
    def raised_by(cls, event: TicketSlaWarned | TicketSlaBreached, *, id: uuid.UUID) -> Escalation:
        breach = isinstance(event, TicketSlaBreached)
        escalation = cls(
            id=id,
            ticket_id=event.ticket_id,
            ticket_number=event.ticket_number,
            kind=event.kind,
            level=EscalationLevel.BREACH if breach else EscalationLevel.WARNING,
            escalated_to=event.escalated_to if breach else ASSIGNEE,
            priority=event.priority,
            group=event.group,
            assignee_id=event.assignee_id,
            deadline=event.deadline,
            created_at=event.breached_at if breach else event.warned_at,
        )
        escalation.version = 1
        return escalation

    def acknowledge(self, *, by: str, now: datetime, note: str | None = None) -> None:
        if self.status == EscalationStatus.ACKNOWLEDGED:
            raise InvalidTransition(f"the escalation was acknowledged already by {self.acknowledged_by}")
        self.status, self.acknowledged_at, self.acknowledged_by = EscalationStatus.ACKNOWLEDGED, now, by
        self.note = (note or "").strip() or None
        self.version += 1
