"""Activities: what a rep did with a lead or an account (pure Python).

Calls, visits, e-mails and meetings are contacts (the first one with a lead stops its
first-contact clock); a note is not. ``next_follow_up_at`` plans the next step: a durable
timer raises ``activity.follow_up_due`` for the owner when it falls due.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import ActivityFollowUpDue, ActivityLogged, ActivityVisitReported, ActivityVisitReviewed


class ActivityKind(StrEnum):
    CALL = "call"
    VISIT = "visit"
    EMAIL = "email"
    MEETING = "meeting"
    NOTE = "note"


class ActivityStatus(StrEnum):
    DONE = "done"
    PLANNED = "planned"  # a visit waiting for the manager's approval
    APPROVED = "approved"  # approved: it needs a report once it happened
    REJECTED = "rejected"


CONTACT_KINDS = frozenset({ActivityKind.CALL, ActivityKind.VISIT, ActivityKind.EMAIL, ActivityKind.MEETING})


@dataclass(eq=False)
class Activity(Aggregate):
    id: uuid.UUID
    kind: ActivityKind
    logged_by: str
    occurred_at: datetime
    created_at: datetime
    lead_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    outcome: str | None = None
    notes: str | None = None
    next_follow_up_at: datetime | None = None
    first_contact: bool = False
    status: ActivityStatus = ActivityStatus.DONE
    reviewed_by: str | None = None
    reported_at: datetime | None = None

    @property
    def is_contact(self) -> bool:
        return self.kind in CONTACT_KINDS

    @classmethod
    def log(cls, *, owner_id: str | None, **fields: object) -> Activity:
        """Record an activity; ``owner_id`` is the lead's or account's owner (for the event)."""
        activity = cls(**fields)  # type: ignore[arg-type]
        if (activity.lead_id is None) == (activity.account_id is None):
            raise DomainError("an activity belongs to one lead or one account")
        if activity.status is ActivityStatus.PLANNED and activity.kind is not ActivityKind.VISIT:
            raise DomainError("only visits are planned ahead")
        if activity.next_follow_up_at is not None and activity.next_follow_up_at <= activity.occurred_at:
            raise DomainError("next_follow_up_at must be after occurred_at")
        activity.record(
            ActivityLogged(
                activity_id=activity.id,
                lead_id=activity.lead_id,
                account_id=activity.account_id,
                kind=activity.kind.value,
                outcome=activity.outcome,
                owner_id=owner_id,
                logged_by=activity.logged_by,
                occurred_at=activity.occurred_at,
                next_follow_up_at=activity.next_follow_up_at,
                first_contact=activity.first_contact,
                status=activity.status.value,
            )
        )
        return activity

    def review(self, *, approved: bool, by: str, note: str | None) -> None:
        if self.status is not ActivityStatus.PLANNED:
            raise InvalidTransition(f"the activity is {self.status.value}, not a planned visit")
        self.status, self.reviewed_by = (ActivityStatus.APPROVED if approved else ActivityStatus.REJECTED), by
        self.record(
            ActivityVisitReviewed(
                activity_id=self.id,
                lead_id=self.lead_id,
                account_id=self.account_id,
                approved=approved,
                reviewed_by=by,
                note=note,
                planned_for=self.occurred_at,
            )
        )

    def require_reportable(self, now: datetime) -> None:
        if self.status is not ActivityStatus.APPROVED:
            raise InvalidTransition(f"the visit is {self.status.value}: only an approved visit is reported")
        if self.occurred_at > now:
            raise InvalidTransition("the visit has not happened yet")

    def report(self, *, outcome: str | None, notes: str | None, by: str, now: datetime, first_contact: bool) -> None:
        """The approved visit happened: its report makes it a done contact."""
        self.require_reportable(now)
        self.status, self.outcome, self.notes, self.reported_at = ActivityStatus.DONE, outcome, notes, now
        self.first_contact = first_contact
        self.record(
            ActivityVisitReported(
                activity_id=self.id,
                lead_id=self.lead_id,
                account_id=self.account_id,
                outcome=outcome,
                reported_by=by,
                first_contact=first_contact,
                reported_at=now,
            )
        )

    def follow_up_due(self, owner_id: str | None) -> None:
        """The planned follow-up fell due: remind whoever owns the lead or account now."""
        assert self.next_follow_up_at is not None
        self.record(
            ActivityFollowUpDue(
                activity_id=self.id,
                lead_id=self.lead_id,
                account_id=self.account_id,
                owner_id=owner_id,
                kind=self.kind.value,
                outcome=self.outcome,
                due_at=self.next_follow_up_at,
            )
        )
