"""What the customer timeline shows of other services' events.

Each announced event becomes one entry: its time, type, a short title and the reference the
other service uses (contract, order or ticket number; the survey's id), plus a few details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.events import ContractSigned, Event, OrderDelivered, SurveyCompleted, TicketOpened


@dataclass(frozen=True, slots=True)
class CustomerEvent:
    customer_id: str
    type: str
    occurred_at: datetime
    title: str
    reference: str
    details: dict[str, Any]


def customer_event(event: Event) -> CustomerEvent:
    match event:
        case ContractSigned():
            return CustomerEvent(
                event.customer_id,
                "contract.signed",
                event.signed_at,
                f"Contract {event.contract_number} signed: {event.total_amount} {event.currency}",
                event.contract_number,
                {
                    "contract_id": str(event.contract_id),
                    "total_amount": str(event.total_amount),
                    "currency": event.currency,
                    "owner_id": event.owner_id,
                },
            )
        case OrderDelivered():
            return CustomerEvent(
                event.customer_id,
                "order.delivered",
                event.delivered_at,
                f"Order {event.order_number} delivered ({len(event.items)} items)",
                event.order_number,
                {"order_id": str(event.order_id), "items": len(event.items)},
            )
        case TicketOpened():
            return CustomerEvent(
                event.customer_id,
                "ticket.opened",
                event.opened_at,
                f"Ticket {event.ticket_number} opened: {event.subject}",
                event.ticket_number,
                {
                    "ticket_id": str(event.ticket_id),
                    "priority": event.priority,
                    "channel": event.channel,
                    "complaint": event.complaint,
                },
            )
        case SurveyCompleted():
            nps = "" if event.nps is None else f", NPS {event.nps}"
            return CustomerEvent(
                event.customer_id,
                "survey.completed",
                event.completed_at,
                f"Survey answered: CSAT {event.csat}{nps}",
                str(event.survey_id),
                {"survey_id": str(event.survey_id), "csat": event.csat, "nps": event.nps, "comment": event.comment},
            )
    raise TypeError(f"no timeline entry for {type(event).__name__}")
