"""The webhooks schema: the event history, subscriptions, deliveries and their attempts (SQLAlchemy Core).

- ``event_history``: every event seen on the bus. Read in commit order (see
  :func:`list_events`), purged after ``event_retention_days``.
- ``subscriptions``: one row per subscription (secrets as Fernet ciphertext).
- ``deliveries``: one row per (subscription, event), unique, so an event that arrives twice is
  one delivery. Its id is the ``webhook-id`` receivers see, on every retry and replay.
  ``status``: ``pending`` (due at ``next_attempt_at``), ``paused`` (the subscription is not
  active; resumes when it is), ``succeeded`` or ``failed`` (schedule used up, 410, or a ping
  that failed). ``leased_until``/``lease_token``: a dispatcher is sending it now.
- ``delivery_attempts``: every attempt, with time, status code, latency, error class and the
  first 2 KB of the response body.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    and_,
    cast,
    delete,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from services.webhooks.domain import Subscription
from shared.auth import Principal
from shared.db import service_metadata, utc_timestamp
from shared.domain import NotFound
from shared.events import CloudEvent
from shared.pagination import PageParams, encode_cursor, fetch_page
from shared.repository import Repository
from shared.uow import UnitOfWork

metadata, platform_tables = service_metadata("webhooks")

PENDING, PAUSED, SUCCEEDED, FAILED = "pending", "paused", "succeeded", "failed"
EVENT, PING = "event", "ping"

# The transaction id of the inserting transaction, as a bigint (xid8 is 64-bit, epoch included).
CURRENT_TX = text("(pg_current_xact_id()::text)::bigint")

event_history = Table(
    "event_history",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("type", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("subject", Text),
    utc_timestamp("time", nullable=False),
    Column("envelope", JSONB, nullable=False),
    utc_timestamp("created_at", nullable=False),
    # Reading order: the writing transaction, then insertion order within it (see list_events).
    Column("tx", BigInteger, nullable=False, server_default=CURRENT_TX),
    Column("position", BigInteger, Identity(), nullable=False),
    Index("ix_event_history_created_at_id", "created_at", "id"),
    Index("ix_event_history_tx_position", "tx", "position"),
    Index("ix_event_history_type_tx_position", "type", "tx", "position"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("owner_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("description", Text),
    Column("active", Boolean, nullable=False),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    utc_timestamp("previous_secret_expires_at"),
    utc_timestamp("failing_since"),
    utc_timestamp("disabled_at"),
    Column("disabled_reason", Text),
    # The endpoint's circuit breaker (see domain/subscription.py).
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    utc_timestamp("circuit_opened_at"),
    utc_timestamp("circuit_open_until"),
    Column("version", Integer, nullable=False),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("updated_at", nullable=False),
    Index("ix_subscriptions_created_at_id", "created_at", "id"),
    Index("ix_subscriptions_owner_id_created_at_id", "owner_id", "created_at", "id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("subscription_id", UUID(as_uuid=True), ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    # The exact bytes sent (the CloudEvents envelope as JSON), so every retry and replay sends the same body.
    Column("body", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # Attempts since the delivery was created or last replayed: the step of the retry schedule.
    Column("run_attempts", Integer, nullable=False, server_default=text("0")),
    Column("replays", Integer, nullable=False, server_default=text("0")),
    utc_timestamp("next_attempt_at"),
    utc_timestamp("leased_until"),
    Column("lease_token", UUID(as_uuid=True)),
    utc_timestamp("last_attempt_at"),
    Column("last_status_code", SmallInteger),
    Column("last_error", Text),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("succeeded_at"),
    UniqueConstraint("subscription_id", "event_id"),
    Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    Index("ix_deliveries_subscription_id_created_at_id", "subscription_id", "created_at", "id"),
    Index("ix_deliveries_event_id", "event_id"),
    Index("ix_deliveries_created_at", "created_at"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("delivery_id", UUID(as_uuid=True), ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("url", Text, nullable=False),
    utc_timestamp("attempted_at", nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("status_code", SmallInteger),
    Column("error_class", Text),
    Column("error", Text),
    Column("response_body", Text),
    Index("ix_delivery_attempts_delivery_id_id", "delivery_id", "id"),
)

DELIVERY_NOTIFY_CHANNEL = "webhooks_deliveries"


# -- event history ---------------------------------------------------------------------------


def type_filter(column: Any, pattern: str) -> ColumnElement[bool]:
    """``pattern`` as in subscriptions: an exact type, ``prefix.*`` or ``*``."""
    if pattern == "*":
        return true()
    if pattern.endswith(".*"):
        return column.startswith(pattern[:-1], autoescape=True)
    return column == pattern


async def event_cursor(uow: UnitOfWork, event_id: uuid.UUID) -> str | None:
    """A cursor that resumes right after ``event_id`` (None if the history does not hold it)."""
    query = select(event_history.c.tx, event_history.c.position).where(event_history.c.id == event_id)
    row = (await uow.execute(query)).first()
    return None if row is None else encode_cursor([row.tx, row.position])


async def list_events(uow: UnitOfWork, page: PageParams, *, event_type: str | None = None) -> tuple[list, str | None]:
    """Events in the order their transactions committed, never skipping one that commits late.

    Rows are keyed by (writing transaction id, position). A page only shows rows whose
    transaction id is below the oldest transaction still running anywhere
    (``pg_snapshot_xmin``): every transaction below it has finished, so no row can later
    appear before a cursor already handed out. A long-running transaction therefore delays
    the newest events in the history (not webhooks) until it ends.
    """
    settled = cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger)
    query = select(event_history).where(event_history.c.tx < settled)
    if event_type is not None:
        query = query.where(type_filter(event_history.c.type, event_type))
    return await fetch_page(uow, query, (event_history.c.tx, event_history.c.position), page)


async def purge_events(uow: UnitOfWork, older_than: datetime, *, batch: int) -> int:
    doomed = select(event_history.c.id).where(event_history.c.created_at < older_than).limit(batch)
    result = await uow.execute(delete(event_history).where(event_history.c.id.in_(doomed.scalar_subquery())))
    return result.rowcount


async def purge_deliveries(uow: UnitOfWork, older_than: datetime, *, batch: int) -> int:
    """Finished deliveries (and their attempts) older than the retention."""
    doomed = (
        select(deliveries.c.id)
        .where(deliveries.c.created_at < older_than, deliveries.c.status.in_((SUCCEEDED, FAILED)))
        .limit(batch)
    )
    result = await uow.execute(delete(deliveries).where(deliveries.c.id.in_(doomed.scalar_subquery())))
    return result.rowcount


# -- subscriptions ---------------------------------------------------------------------------


class SubscriptionRepository(Repository[Subscription]):
    table = subscriptions
    noun = "webhook subscription"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        """Each integration client sees its own subscriptions; ``admin`` sees all."""
        if principal is None or principal.is_admin:
            return true()
        return subscriptions.c.owner_id == principal.sub

    def to_row(self, s: Subscription) -> dict[str, Any]:
        return {
            "id": s.id,
            "owner_id": s.owner_id,
            "url": s.url,
            "event_types": list(s.event_types),
            "description": s.description,
            "active": s.active,
            "secret": s.secret,
            "previous_secret": s.previous_secret,
            "previous_secret_expires_at": s.previous_secret_expires_at,
            "failing_since": s.failing_since,
            "disabled_at": s.disabled_at,
            "disabled_reason": s.disabled_reason,
            "consecutive_failures": s.consecutive_failures,
            "circuit_opened_at": s.circuit_opened_at,
            "circuit_open_until": s.circuit_open_until,
            "version": s.version,
            "created_at": s.created_at,
            "updated_at": s.updated_at,
        }

    def from_row(self, row: Any) -> Subscription:
        return Subscription(
            id=row.id,
            owner_id=row.owner_id,
            url=row.url,
            event_types=tuple(row.event_types),
            secret=row.secret,
            created_at=row.created_at,
            updated_at=row.updated_at,
            description=row.description,
            active=row.active,
            previous_secret=row.previous_secret,
            previous_secret_expires_at=row.previous_secret_expires_at,
            failing_since=row.failing_since,
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
            consecutive_failures=row.consecutive_failures,
            circuit_opened_at=row.circuit_opened_at,
            circuit_open_until=row.circuit_open_until,
            version=row.version,
        )

    async def delete(self, subscription_id: uuid.UUID) -> None:
        await self.uow.execute(delete(subscriptions).where(subscriptions.c.id == subscription_id))


# -- deliveries ------------------------------------------------------------------------------

_MATCHING_SUBSCRIPTIONS = """
    SELECT s.id FROM "webhooks".subscriptions s
    WHERE s.active AND EXISTS (
        SELECT 1 FROM unnest(s.event_types) AS p(pattern)
        WHERE p.pattern = :event_type OR p.pattern = '*'
           OR (right(p.pattern, 2) = '.*' AND starts_with(:event_type, left(p.pattern, -1))))
"""
_RECORD_AND_FAN_OUT = text(
    f"""
    WITH history AS (
        INSERT INTO "webhooks".event_history (id, type, source, subject, time, envelope, created_at)
        VALUES (:event_id, :event_type, :source, :subject, :time, CAST(:body AS jsonb), :time)
        ON CONFLICT DO NOTHING
    ), made AS (
        INSERT INTO "webhooks".deliveries
            (id, subscription_id, kind, event_id, event_type, body, status, next_attempt_at, created_at)
        SELECT gen_random_uuid(), m.id, 'event', :event_id, :event_type, :body, 'pending', :due, :now
        FROM ({_MATCHING_SUBSCRIPTIONS}) AS m
        ON CONFLICT (subscription_id, event_id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM made
    """
)


async def record_event(uow: UnitOfWork, envelope: CloudEvent, *, now: datetime, due: datetime) -> int:
    """Keep the event in the history (once), make one delivery per active subscription whose
    patterns match (none twice for one event), and wake the dispatchers at commit if any was
    made; returns how many. One statement: the consumer's cost per event is one round trip."""
    result = await uow.execute(
        _RECORD_AND_FAN_OUT,
        {
            "event_id": envelope.id,
            "event_type": envelope.type,
            "source": envelope.source,
            "subject": envelope.subject,
            "time": envelope.time,
            "body": envelope.to_json(),
            "due": due,
            "now": now,
        },
    )
    made = result.scalar_one()
    if made:
        notify_dispatchers(uow)
    return made


def notify_dispatchers(uow: UnitOfWork) -> None:
    """Wake the dispatchers once this unit of work commits (new or replayed deliveries)."""
    uow.wake_after_commit(DELIVERY_NOTIFY_CHANNEL)


def in_lock_order(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """Deliveries matching ``conditions``, locked in id order first, as the dispatcher's recorder
    locks its batch: two transactions updating many deliveries then never deadlock."""
    locked = select(deliveries.c.id).where(*conditions).order_by(deliveries.c.id).with_for_update()
    return deliveries.c.id.in_(locked.scalar_subquery())


async def pause_deliveries(uow: UnitOfWork, subscription_id: uuid.UUID) -> None:
    await uow.execute(
        update(deliveries)
        .where(
            in_lock_order(
                deliveries.c.subscription_id == subscription_id,
                deliveries.c.status == PENDING,
                deliveries.c.kind == EVENT,
            )
        )
        .values(status=PAUSED)
    )


async def resume_deliveries(uow: UnitOfWork, subscription_id: uuid.UUID, now: datetime) -> None:
    await uow.execute(
        update(deliveries)
        .where(in_lock_order(deliveries.c.subscription_id == subscription_id, deliveries.c.status == PAUSED))
        .values(status=PENDING, next_attempt_at=func.least(deliveries.c.next_attempt_at, now))
    )
    notify_dispatchers(uow)


def _visible_deliveries(principal: Principal) -> Any:
    """Deliveries joined to their subscription, limited to what ``principal`` may see."""
    query = select(deliveries, subscriptions.c.owner_id).join(
        subscriptions, subscriptions.c.id == deliveries.c.subscription_id
    )
    if not principal.is_admin:
        query = query.where(subscriptions.c.owner_id == principal.sub)
    return query


async def get_delivery(uow: UnitOfWork, delivery_id: uuid.UUID, principal: Principal, *, for_update: bool = False):
    query = _visible_deliveries(principal).where(deliveries.c.id == delivery_id)
    if for_update:
        query = query.with_for_update(of=deliveries)
    row = (await uow.execute(query)).first()
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return row


async def list_deliveries(
    uow: UnitOfWork,
    principal: Principal,
    page: PageParams,
    *,
    subscription_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    status: str | None = None,
    event_type: str | None = None,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list, str | None]:
    query = _visible_deliveries(principal)
    conditions = []
    if subscription_id is not None:
        conditions.append(deliveries.c.subscription_id == subscription_id)
    if event_id is not None:
        conditions.append(deliveries.c.event_id == event_id)
    if status is not None:
        conditions.append(deliveries.c.status == status)
    if event_type is not None:
        conditions.append(type_filter(deliveries.c.event_type, event_type))
    if created_from is not None:
        conditions.append(deliveries.c.created_at >= created_from)
    if created_before is not None:
        conditions.append(deliveries.c.created_at < created_before)
    if conditions:
        query = query.where(and_(*conditions))
    return await fetch_page(uow, query, (deliveries.c.created_at, deliveries.c.id), page)


async def list_attempts(uow: UnitOfWork, delivery_id: uuid.UUID, page: PageParams) -> tuple[list, str | None]:
    query = select(delivery_attempts).where(delivery_attempts.c.delivery_id == delivery_id)
    return await fetch_page(uow, query, (delivery_attempts.c.id,), page)


def replay_values(now: datetime) -> dict[str, Any]:
    """What a replay sets: pending now, a fresh run of the schedule, no lease (an attempt in
    flight finishes but no longer decides the delivery's state)."""
    return {
        "status": PENDING,
        "next_attempt_at": now,
        "run_attempts": 0,
        "replays": deliveries.c.replays + 1,
        "leased_until": None,
        "lease_token": None,
    }
