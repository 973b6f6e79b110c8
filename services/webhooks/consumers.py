"""The webhooks service consumes every event on the bus, and purges old history on a timer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.webhooks.config import get_settings
from services.webhooks.db import purge_deliveries, purge_events, record_event
from services.webhooks.domain import RetryPolicy
from shared.events import CloudEvent
from shared.inbox import Subscription
from shared.uow import UnitOfWork

PURGE_TIMER = "webhooks.purge"
PURGE_KEY = "retention"
PURGE_BATCH = 5000


async def on_any_event(envelope: CloudEvent, uow: UnitOfWork) -> None:
    """Keep the event in the history, and make one delivery per active subscription it matches.

    The inbox makes a redelivered event a no-op; the deliveries' unique (subscription, event)
    key does too, should the same event reach this handler twice anyway.
    """
    settings = get_settings()
    now = datetime.now(UTC)
    due = RetryPolicy(settings.retry_schedule_seconds, settings.retry_jitter).first_attempt_at(now)
    await record_event(uow, envelope, now=now, due=due)


async def purge_expired(payload: dict[str, Any], uow: UnitOfWork) -> None:
    """Delete history and finished deliveries past their retention, then re-arm itself.

    At most one batch of each per firing; when a batch was full it comes back in a minute.
    """
    settings = get_settings()
    now = datetime.now(UTC)
    events = await purge_events(uow, now - timedelta(days=settings.event_retention_days), batch=PURGE_BATCH)
    deliveries = await purge_deliveries(uow, now - timedelta(days=settings.delivery_retention_days), batch=PURGE_BATCH)
    more = PURGE_BATCH in (events, deliveries)
    # The poller marks the firing row by id after this returns: replace the row rather than
    # move it, or the re-arm would be marked fired too.
    timers = uow.tables.timers
    await uow.execute(delete(timers).where(timers.c.kind == PURGE_TIMER, timers.c.key == PURGE_KEY))
    next_run = now + timedelta(seconds=60 if more else settings.purge_interval_seconds)
    await uow.execute(pg_insert(timers).values(kind=PURGE_TIMER, key=PURGE_KEY, due_at=next_run, payload={}))


async def ensure_purge_timer(uow: UnitOfWork) -> None:
    """Arm the purge timer unless it is armed (every worker calls this at start; one row wins)."""
    timers = uow.tables.timers
    stmt = pg_insert(timers).values(kind=PURGE_TIMER, key=PURGE_KEY, due_at=datetime.now(UTC), payload={})
    await uow.execute(
        stmt.on_conflict_do_update(
            index_elements=[timers.c.kind, timers.c.key],
            set_={"due_at": stmt.excluded.due_at, "fired_at": None, "attempts": 0},
            where=timers.c.fired_at.is_not(None),
        )
    )


SUBSCRIPTIONS = [Subscription("webhooks.all_events", on_any_event, patterns=("#",))]
TIMERS = {PURGE_TIMER: purge_expired}
