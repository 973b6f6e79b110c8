"""The webhooks service consumes every event on the bus."""

from __future__ import annotations

from services.webhooks.db import record_event
from shared.events import CloudEvent
from shared.inbox import Subscription
from shared.uow import UnitOfWork


async def on_any_event(envelope: CloudEvent, uow: UnitOfWork) -> None:
    """Keep the event in the history (deliveries to subscriptions come with the webhooks issue)."""
    await record_event(uow, envelope)


SUBSCRIPTIONS = [Subscription("webhooks.all_events", on_any_event, patterns=("#",))]
