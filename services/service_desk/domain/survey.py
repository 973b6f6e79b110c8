"""The satisfaction survey (thin platform version: sent on delivery, one reminder).

The service desk issue adds the customer survey page, CSAT 1-5 and NPS 0-10 answers, and the
surveys sent when a ticket is resolved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain import Aggregate
from shared.events import ContactInfo, OrderDelivered, SurveySent


class SurveyStatus(StrEnum):
    SENT = "sent"
    COMPLETED = "completed"


@dataclass(eq=False)
class Survey(Aggregate):
    id: uuid.UUID
    trigger: str
    customer_id: str
    customer_name: str
    owner_id: str
    created_at: datetime
    order_id: uuid.UUID | None = None
    contact: ContactInfo | None = None
    status: SurveyStatus = SurveyStatus.SENT
    reminded_at: datetime | None = None

    @classmethod
    def for_delivery(cls, event: OrderDelivered, *, survey_id: uuid.UUID, now: datetime) -> Survey:
        survey = cls(
            id=survey_id,
            trigger="order.delivered",
            order_id=event.order_id,
            customer_id=event.customer_id,
            customer_name=event.customer_name,
            contact=event.contact,
            owner_id=event.owner_id,
            created_at=now,
        )
        survey.record(
            SurveySent(
                survey_id=survey.id,
                trigger=survey.trigger,
                order_id=survey.order_id,
                customer_id=survey.customer_id,
                contact=survey.contact,
            )
        )
        return survey

    def remind(self, now: datetime) -> bool:
        """Remind once, and only while unanswered; says whether a reminder is due."""
        if self.status != SurveyStatus.SENT or self.reminded_at is not None:
            return False
        self.reminded_at = now
        return True
