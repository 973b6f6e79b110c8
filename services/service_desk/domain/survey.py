"""The satisfaction survey: sent on delivery (CSAT + NPS) or on a resolved ticket (CSAT).

The customer answers once, through a secret link (only its hash is stored) that expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import ContactInfo, OrderDelivered, SurveyCompleted, SurveyReminded, SurveySent

CSAT_RANGE = range(1, 6)
NPS_RANGE = range(0, 11)
MAX_COMMENT_LENGTH = 2000


class SurveyStatus(StrEnum):
    SENT = "sent"
    COMPLETED = "completed"


class SurveyAlreadyAnswered(InvalidTransition):
    title = "Survey already answered"


class SurveyExpired(DomainError):
    status = 410
    title = "Survey link expired"


class InvalidAnswer(DomainError):
    title = "Invalid survey answer"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SurveyLink:
    """Where the customer answers: the URL (sent once, in ``survey.sent``) and its stored hash."""

    url: str
    token_hash: str
    expires_at: datetime


@dataclass(eq=False)
class Survey(Aggregate):
    id: uuid.UUID
    trigger: str
    customer_id: str
    customer_name: str
    owner_id: str
    created_at: datetime
    order_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    contact: ContactInfo | None = None
    status: SurveyStatus = SurveyStatus.SENT
    reminded_at: datetime | None = None
    token_hash: str | None = None
    reminder_token_hash: str | None = None  # the reminder's own link, answering the same survey
    # For reports: the products delivered (SKUs), or the team (group) that resolved the ticket.
    products: tuple[str, ...] = ()
    team: str | None = None
    expires_at: datetime | None = None
    csat: int | None = None
    nps: int | None = None
    comment: str | None = None
    completed_at: datetime | None = None

    @property
    def asks_nps(self) -> bool:
        """A delivery survey asks for NPS too; a ticket survey only for CSAT."""
        return self.trigger == "order.delivered"

    @classmethod
    def for_delivery(
        cls, event: OrderDelivered, *, survey_id: uuid.UUID, now: datetime, link: SurveyLink | None = None
    ) -> Survey:
        survey = cls(
            id=survey_id,
            trigger="order.delivered",
            order_id=event.order_id,
            customer_id=event.customer_id,
            customer_name=event.customer_name,
            contact=event.contact,
            owner_id=event.owner_id,
            created_at=now,
            products=tuple(dict.fromkeys(item.sku for item in event.items)),
        )
        survey._send(link)
        return survey

    @classmethod
    def for_ticket(
        cls,
        *,
        survey_id: uuid.UUID,
        ticket_id: uuid.UUID,
        customer_id: str,
        customer_name: str,
        contact: ContactInfo | None,
        owner_id: str,
        now: datetime,
        link: SurveyLink | None = None,
        team: str | None = None,
    ) -> Survey:
        survey = cls(
            id=survey_id,
            trigger="ticket.resolved",
            team=team,
            ticket_id=ticket_id,
            customer_id=customer_id,
            customer_name=customer_name,
            contact=contact,
            owner_id=owner_id,
            created_at=now,
        )
        survey._send(link)
        return survey

    def _send(self, link: SurveyLink | None) -> None:
        if link is not None:
            self.token_hash, self.expires_at = link.token_hash, link.expires_at
        self.record(
            SurveySent(
                survey_id=self.id,
                trigger=self.trigger,
                order_id=self.order_id,
                ticket_id=self.ticket_id,
                customer_id=self.customer_id,
                contact=self.contact,
                link=link.url if link else None,
                expires_at=self.expires_at,
            )
        )

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def check_open(self, now: datetime) -> None:
        """May the customer still answer? (answered first: a used link says so even when old)"""
        if self.status == SurveyStatus.COMPLETED:
            raise SurveyAlreadyAnswered("this survey has already been answered")
        if self.is_expired(now):
            raise SurveyExpired("this survey link has expired")

    def answer(self, *, csat: int | None, nps: int | None, comment: str | None, now: datetime) -> None:
        self.check_open(now)
        if csat not in CSAT_RANGE:
            raise InvalidAnswer("csat", "satisfaction must be a whole number from 1 to 5")
        if self.asks_nps and nps not in NPS_RANGE:
            raise InvalidAnswer("nps", "likelihood to recommend must be a whole number from 0 to 10")
        if not self.asks_nps:
            nps = None
        comment = (comment or "").strip() or None
        if comment is not None and len(comment) > MAX_COMMENT_LENGTH:
            raise InvalidAnswer("comment", f"the comment may have at most {MAX_COMMENT_LENGTH} characters")
        self.status, self.csat, self.nps, self.comment, self.completed_at = (
            SurveyStatus.COMPLETED,
            csat,
            nps,
            comment,
            now,
        )
        self.record(
            SurveyCompleted(
                survey_id=self.id,
                trigger=self.trigger,
                order_id=self.order_id,
                ticket_id=self.ticket_id,
                customer_id=self.customer_id,
                owner_id=self.owner_id,
                csat=csat,
                nps=nps,
                comment=comment,
                completed_at=now,
            )
        )

    def remind(self, now: datetime, link: SurveyLink | None = None) -> bool:
        """Remind once, and only while unanswered and open; says whether it reminded.

        Only the hash of the first link is stored, so the reminder carries a fresh link (the
        first keeps working; both expire together and either answers the survey once).
        """
        if self.status != SurveyStatus.SENT or self.reminded_at is not None or self.is_expired(now):
            return False
        self.reminded_at = now
        if link is not None:
            self.reminder_token_hash = link.token_hash
        self.record(
            SurveyReminded(
                survey_id=self.id,
                trigger=self.trigger,
                order_id=self.order_id,
                ticket_id=self.ticket_id,
                customer_id=self.customer_id,
                contact=self.contact,
                link=link.url if link else None,
                expires_at=self.expires_at,
            )
        )
        return True
