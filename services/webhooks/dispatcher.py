"""The dispatcher: sends due deliveries, concurrently, and records what happened.

Claim. One statement (autocommit) picks due, pending, unleased deliveries of active
subscriptions with ``FOR UPDATE SKIP LOCKED`` and leases them (``leased_until``, real time,
and a ``lease_token``). Replicas therefore never claim the same delivery, and a delivery whose
worker died mid-way is claimed again once its lease ends: it is sent again under the same
``webhook-id`` (at least once; receivers deduplicate). Retries are these rows, due at
``next_attempt_at``: durable timers that survive restarts.

Send. No transaction is open while a request is in flight. Each delivery is its own task; at
most ``per_subscription_concurrency`` per subscription and ``dispatcher_concurrency`` in all
are in flight, and subscriptions at their limit are skipped by the claim, so a slow or dead
endpoint holds only its own slots (each at most the 15 s timeout) and never delays another's.

Record. One short transaction per attempt: the attempt row, the delivery's next state from the
retry policy (``domain/retry.py``) — only if the lease is still this dispatcher's, so a replay
or a takeover wins — and the subscription's health (``domain/subscription.py``): a 410 or 5
days of failures disable it, which pauses its pending deliveries and records
``webhook_subscription.disabled.v1`` in the outbox. Locks are taken subscription first, then
delivery, as the API does, so the two never deadlock; the subscription is locked only when
the attempt changes its health (the first failure, a success after failures, disabling), so
concurrent attempts to one endpoint do not queue on its row.

The clock is injected (``clock.py``): "due", attempt times and failure durations follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import uuid
from collections import Counter as Tally
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.webhooks import db
from services.webhooks.clock import Clock, SystemClock
from services.webhooks.config import WebhooksSettings
from services.webhooks.crypto import secret_box
from services.webhooks.db import SubscriptionRepository
from services.webhooks.domain import Outcome, RetryPolicy, Subscription
from services.webhooks.sender import AttemptResult, ErrorClass, Sender, signature_headers, traceparent_header
from shared.db import PlatformTables, asyncpg_dsn
from shared.uow import UnitOfWork

log = logging.getLogger("salesline.webhooks")

ATTEMPTS = Counter("salesline_webhook_attempts_total", "Webhook delivery attempts", ["result"])
LATENCY = Histogram(
    "salesline_webhook_attempt_seconds",
    "Webhook attempt latency (request sent to response read)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)

_CLAIM_SQL = text(
    """
    WITH candidates AS (
        SELECT d.id, d.subscription_id, d.next_attempt_at
        FROM "webhooks".deliveries d JOIN "webhooks".subscriptions s ON s.id = d.subscription_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= :now
          AND (d.leased_until IS NULL OR d.leased_until < now())
          AND (s.active OR d.kind = 'ping')
          AND d.subscription_id <> ALL(CAST(:saturated AS uuid[]))
        ORDER BY d.next_attempt_at
        LIMIT :scan
        FOR UPDATE OF d SKIP LOCKED
    ), ranked AS (
        SELECT c.id, c.next_attempt_at,
               row_number() OVER (PARTITION BY c.subscription_id ORDER BY c.next_attempt_at, c.id) AS rank,
               :per_subscription - coalesce(b.busy, 0) AS room
        FROM candidates c
        LEFT JOIN unnest(CAST(:busy_ids AS uuid[]), CAST(:busy_counts AS int[])) AS b(subscription_id, busy)
               ON b.subscription_id = c.subscription_id
    ), chosen AS (
        SELECT id FROM ranked WHERE rank <= room ORDER BY next_attempt_at, id LIMIT :limit
    )
    UPDATE "webhooks".deliveries d
    SET leased_until = now() + make_interval(secs => :lease), lease_token = :token
    FROM chosen, "webhooks".subscriptions s
    WHERE d.id = chosen.id AND s.id = d.subscription_id
    RETURNING d.id, d.subscription_id, d.kind, d.body, s.url,
              s.secret, s.previous_secret, s.previous_secret_expires_at
    """
)
_LOCK_DELIVERY_SQL = text(
    """SELECT attempts, run_attempts, lease_token FROM "webhooks".deliveries WHERE id = :id FOR UPDATE"""
)
_INSERT_ATTEMPT_SQL = text(
    """
    INSERT INTO "webhooks".delivery_attempts
        (delivery_id, attempt_no, url, attempted_at, latency_ms, status_code, error_class, error, response_body)
    VALUES (:id, :attempt_no, :url, :attempted_at, :latency_ms, :status_code, :error_class, :error, :body)
    """
)
_LOG_ONLY_SQL = text(
    """UPDATE "webhooks".deliveries SET attempts = attempts + 1, last_attempt_at = :at,
           last_status_code = :status_code, last_error = :error
       WHERE id = :id"""
)
_DECIDE_SQL = text(
    """UPDATE "webhooks".deliveries SET attempts = attempts + 1, run_attempts = :run_attempts,
           last_attempt_at = :at, last_status_code = :status_code, last_error = :error,
           status = :status, next_attempt_at = :next_attempt_at, succeeded_at = :succeeded_at,
           leased_until = NULL, lease_token = NULL
       WHERE id = :id"""
)


class Dispatcher:
    def __init__(
        self,
        settings: WebhooksSettings,
        engine: AsyncEngine,
        tables: PlatformTables,
        *,
        clock: Clock | None = None,
        sender: Sender | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.tables = tables
        self.clock = clock or SystemClock()
        self.sender = sender or Sender(
            timeout=settings.delivery_timeout_seconds,
            allowed=settings.allowed_ip_networks,
            http_allowed=settings.http_allowed,
            max_connections=settings.dispatcher_concurrency,
            excerpt_bytes=settings.response_excerpt_bytes,
        )
        self.policy = policy or RetryPolicy(
            settings.retry_schedule_seconds, settings.retry_jitter, settings.max_retry_after_seconds
        )
        self._box = secret_box(tuple(settings.secret_keys))
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._inflight: dict[uuid.UUID, tuple[uuid.UUID, asyncio.Task[None]]] = {}
        self._per_subscription: Tally[uuid.UUID] = Tally()
        self._wake = asyncio.Event()

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, self.tables, self.settings.source)

    # -- running ---------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stopping))
        try:
            while not stopping.is_set():
                self._wake.clear()
                try:
                    started = await self.dispatch_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the database may be away; poll again
                    log.warning("webhook claim failed: %s", exc)
                    started = 0
                if started == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            _first(self._wake.wait(), stopping.wait()), timeout=self.settings.dispatcher_poll_seconds
                        )
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self.shutdown()

    async def dispatch_due(self) -> int:
        """Claim what is due (within the concurrency limits) and start sending it; returns how many."""
        free = self.settings.dispatcher_concurrency - len(self._inflight)
        if free <= 0:
            return 0
        limit_each = self.settings.per_subscription_concurrency
        busy = {s: n for s, n in self._per_subscription.items() if n > 0}
        token = uuid.uuid4()
        async with self._autocommit.connect() as conn:
            rows = (
                await conn.execute(
                    _CLAIM_SQL,
                    {
                        "now": self.clock.now(),
                        "saturated": [s for s, n in busy.items() if n >= limit_each],
                        "busy_ids": list(busy),
                        "busy_counts": list(busy.values()),
                        "per_subscription": limit_each,
                        "scan": max(4 * free, 100),
                        "limit": free,
                        "lease": self.settings.delivery_lease_seconds,
                        "token": token,
                    },
                )
            ).all()
        for row in rows:
            task = asyncio.create_task(self._deliver(row, token))
            self._inflight[row.id] = (row.subscription_id, task)
            self._per_subscription[row.subscription_id] += 1
            task.add_done_callback(lambda _t, row=row: self._done(row.id, row.subscription_id))
        return len(rows)

    def _done(self, delivery_id: uuid.UUID, subscription_id: uuid.UUID) -> None:
        self._inflight.pop(delivery_id, None)
        self._per_subscription[subscription_id] -= 1
        if self._per_subscription[subscription_id] <= 0:
            del self._per_subscription[subscription_id]
        self._wake.set()  # a slot is free: claim again

    async def drain(self) -> None:
        """Wait until every delivery in flight is sent and recorded."""
        while self._inflight:
            await asyncio.gather(*(task for _, task in list(self._inflight.values())), return_exceptions=True)

    async def run_once(self) -> int:
        """Claim, send and record everything due now (tests drive the schedule with this)."""
        total = 0
        while started := await self.dispatch_due():
            total += started
            await self.drain()
        return total

    async def shutdown(self) -> None:
        """Let requests in flight finish (they are bounded by the timeout), then close the pool."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), timeout=self.settings.delivery_timeout_seconds + 5)
        for _, task in list(self._inflight.values()):
            task.cancel()
        await self.sender.aclose()

    # -- one delivery ----------------------------------------------------------------------

    async def _deliver(self, row: Any, token: uuid.UUID) -> None:
        attempted_at = self.clock.now()
        try:
            secrets = [self._box.open(row.secret)]
            if row.previous_secret and row.previous_secret_expires_at and attempted_at < row.previous_secret_expires_at:
                secrets.append(self._box.open(row.previous_secret))
            headers = signature_headers(str(row.id), row.body, secrets, datetime.now(UTC))
            if traceparent := traceparent_header(row.body):
                headers["traceparent"] = traceparent
        except ValueError as exc:
            result = AttemptResult(Outcome(error_class=ErrorClass.OTHER), 0, error=str(exc))
        else:
            result = await self.sender.post(row.url, row.body.encode(), headers)
        ATTEMPTS.labels("succeeded" if result.outcome.succeeded else (result.outcome.error_class or "failed")).inc()
        LATENCY.observe(result.latency_ms / 1000)
        delay = 0.2
        for _ in range(8):
            try:
                await self._record(row, token, result, attempted_at)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried; in the end the lease runs out and it is resent
                log.warning("recording webhook attempt %s failed: %s", row.id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        log.error("gave up recording webhook attempt %s; it will be sent again after its lease", row.id)

    async def _record(self, row: Any, token: uuid.UUID, result: AttemptResult, attempted_at: datetime) -> None:
        outcome = result.outcome
        uow = self.uow()
        async with uow:
            subscriptions = SubscriptionRepository(uow)
            subscription = None
            if row.kind == db.EVENT:
                subscription = await subscriptions.get(row.subscription_id, None)
                if subscription is not None and self._apply_health(copy.deepcopy(subscription), outcome, attempted_at):
                    # Its health changes: lock it (before the delivery, as the API does) and decide again.
                    subscription = await subscriptions.get(row.subscription_id, None, for_update=True)
                    if subscription is not None and self._apply_health(subscription, outcome, attempted_at):
                        await self._health_changed(subscriptions, subscription)
            current = (await uow.execute(_LOCK_DELIVERY_SQL, {"id": row.id})).first()
            if current is None:
                return  # deleted with its subscription meanwhile
            common = {
                "id": row.id,
                "at": attempted_at,
                "status_code": outcome.status_code,
                "error": result.error,
            }
            await uow.execute(
                _INSERT_ATTEMPT_SQL,
                {
                    "id": row.id,
                    "attempt_no": current.attempts + 1,
                    "url": row.url,
                    "attempted_at": attempted_at,
                    "latency_ms": result.latency_ms,
                    "status_code": outcome.status_code,
                    "error_class": outcome.error_class,
                    "error": result.error,
                    "body": result.body_excerpt,
                },
            )
            if current.lease_token != token:
                # Replayed (or taken over) while in flight: log the attempt, decide nothing.
                await uow.execute(_LOG_ONLY_SQL, common)
                await uow.commit()
                return
            run_attempts = current.run_attempts + 1
            decision = self.policy.after(outcome, run_attempts, attempted_at, retry=row.kind == db.EVENT)
            if outcome.succeeded:
                status = db.SUCCEEDED
            elif decision.next_attempt_at is not None:
                status = db.PENDING
            else:
                status = db.FAILED
            if status == db.PENDING and subscription is not None and not subscription.active:
                status = db.PAUSED  # disabled meanwhile (by this attempt or another)
            await uow.execute(
                _DECIDE_SQL,
                {
                    **common,
                    "run_attempts": run_attempts,
                    "status": status,
                    "next_attempt_at": decision.next_attempt_at,
                    "succeeded_at": attempted_at if outcome.succeeded else None,
                },
            )
            await uow.commit()

    def _apply_health(self, subscription: Subscription, outcome: Outcome, now: datetime) -> bool:
        """Tell the subscription how the attempt went; returns whether that changed it."""
        if outcome.succeeded:
            return subscription.record_success(now)
        return subscription.record_failure(
            now,
            disable_after=timedelta(seconds=self.settings.disable_after_failing_seconds),
            gone=outcome.gone,
            status_code=outcome.status_code,
        )

    async def _health_changed(self, subscriptions: SubscriptionRepository, subscription: Subscription) -> None:
        await subscriptions.save(subscription)
        if not subscription.active:
            log.warning("webhook subscription %s disabled (%s)", subscription.id, subscription.disabled_reason)
            await db.pause_deliveries(subscriptions.uow, subscription.id)

    # -- waking up -------------------------------------------------------------------------

    async def _listen(self, stopping: asyncio.Event) -> None:
        """Wake on NOTIFY (new, replayed or pinged deliveries); polling covers any gap."""
        while not stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self.settings), timeout=5)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                await conn.add_listener(db.DELIVERY_NOTIFY_CHANNEL, lambda *_: self._wake.set())
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect later
                log.debug("dispatcher listener lost PostgreSQL: %s", exc)
                await asyncio.sleep(1.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)


async def _first(*aws: Any) -> None:
    """Return when the first of ``aws`` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
