"""The dispatcher: sends due deliveries, concurrently, and records what happened.

Claim. One statement (autocommit) picks due, pending, unleased deliveries of active
subscriptions with ``FOR UPDATE SKIP LOCKED`` and leases them (``leased_until``, real time,
and a ``lease_token``). Replicas therefore never claim the same delivery, and a delivery whose
worker died mid-way is claimed again once its lease ends: it is sent again under the same
``webhook-id`` (at least once; receivers deduplicate). Retries are these rows, due at
``next_attempt_at``: durable timers that survive restarts. Endpoints whose circuit is open
(``domain/subscription.py``) are skipped; a half-open one gets a single probe.

Send. No transaction is open while a request is in flight. Each delivery is its own task; at
most ``per_subscription_concurrency`` per subscription and ``dispatcher_concurrency`` in all
are in flight, and subscriptions at their limit are skipped by the claim, so a slow or dead
endpoint holds only its own slots (each at most the 15 s timeout) and never delays another's.
Each endpoint has its own keep-alive connection pool (``sender.py``); decrypted signing
secrets are cached by their ciphertext.

Record. The slot is free as soon as the response is read: the lease still keeps the delivery
from being claimed again. One recorder task writes whatever attempts are waiting (up to
``record_batch_size``) in one transaction: the attempt rows (one INSERT), the deliveries' next
states from the retry policy (``domain/retry.py``; one UPDATE) — only where the lease is still
this dispatcher's, so a replay or a takeover wins — and the subscriptions' health: failures
counted for the circuit breaker, and a 410 or 5 days of failures disable it, which pauses its
pending deliveries and records ``webhook_subscription.disabled.v1`` in the outbox. Locks are
taken subscriptions first, then deliveries in id order, as the API does, so the two do not
deadlock; a subscription is locked only when its health changes, so a healthy endpoint's
row is never written.

The dispatcher's own connections skip the WAL flush (``synchronous_commit = off``): a lease or
a record lost in a database crash only means the delivery is sent again under the same
``webhook-id`` once its lease ends, which at-least-once delivery already allows.

The clock is injected (``clock.py``): "due", attempt times and failure durations follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import uuid
from collections import Counter as Tally
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from prometheus_client import Counter, Histogram
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from standardwebhooks import Webhook

from services.webhooks import db
from services.webhooks.clock import Clock, SystemClock
from services.webhooks.config import WebhooksSettings
from services.webhooks.crypto import secret_box
from services.webhooks.db import SubscriptionRepository
from services.webhooks.domain import CircuitPolicy, Outcome, RetryPolicy, Subscription
from services.webhooks.sender import AttemptResult, ErrorClass, Sender, signature_headers, traceparent_header
from shared import telemetry
from shared.context import envelope_traceparent
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
        SELECT d.id, d.subscription_id, d.next_attempt_at, d.kind, s.circuit_open_until
        FROM "webhooks".deliveries d JOIN "webhooks".subscriptions s ON s.id = d.subscription_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= :now
          AND (d.leased_until IS NULL OR d.leased_until < now())
          AND (s.active OR d.kind = 'ping')
          AND (d.kind = 'ping' OR s.circuit_open_until IS NULL OR s.circuit_open_until <= :now)
          AND d.subscription_id <> ALL(CAST(:saturated AS uuid[]))
        ORDER BY d.next_attempt_at
        LIMIT :scan
        FOR UPDATE OF d SKIP LOCKED
    ), ranked AS (
        SELECT c.id, c.next_attempt_at,
               row_number() OVER (PARTITION BY c.subscription_id ORDER BY c.next_attempt_at, c.id) AS rank,
               CASE WHEN c.circuit_open_until IS NULL OR c.kind = 'ping'
                    THEN :per_subscription - coalesce(b.busy, 0)
                    ELSE 1 - coalesce(b.held, 0) END AS room  -- half-open: one probe, until recorded
        FROM candidates c
        LEFT JOIN unnest(CAST(:busy_ids AS uuid[]), CAST(:busy_counts AS int[]), CAST(:held_counts AS int[]))
                  AS b(subscription_id, busy, held)
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
_LOCK_DELIVERIES_SQL = text(
    """SELECT id, attempts, run_attempts, status, next_attempt_at, succeeded_at, leased_until, lease_token
       FROM "webhooks".deliveries WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE"""
)
_INSERT_ATTEMPTS_SQL = text(
    """
    INSERT INTO "webhooks".delivery_attempts
        (delivery_id, attempt_no, url, attempted_at, latency_ms, status_code, error_class, error, response_body)
    SELECT * FROM unnest(CAST(:delivery_id AS uuid[]), CAST(:attempt_no AS int[]), CAST(:url AS text[]),
                         CAST(:attempted_at AS timestamptz[]), CAST(:latency_ms AS int[]),
                         CAST(:status_code AS smallint[]), CAST(:error_class AS text[]), CAST(:error AS text[]),
                         CAST(:response_body AS text[]))
    """
)
_UPDATE_DELIVERIES_SQL = text(
    """
    UPDATE "webhooks".deliveries d
    SET attempts = u.attempts, run_attempts = u.run_attempts, status = u.status,
        next_attempt_at = u.next_attempt_at, last_attempt_at = u.last_attempt_at,
        last_status_code = u.last_status_code, last_error = u.last_error, succeeded_at = u.succeeded_at,
        leased_until = u.leased_until, lease_token = u.lease_token
    FROM unnest(CAST(:id AS uuid[]), CAST(:attempts AS int[]), CAST(:run_attempts AS int[]),
                CAST(:status AS text[]), CAST(:next_attempt_at AS timestamptz[]),
                CAST(:last_attempt_at AS timestamptz[]), CAST(:last_status_code AS smallint[]),
                CAST(:last_error AS text[]), CAST(:succeeded_at AS timestamptz[]),
                CAST(:leased_until AS timestamptz[]), CAST(:lease_token AS uuid[]))
         AS u(id, attempts, run_attempts, status, next_attempt_at, last_attempt_at, last_status_code,
              last_error, succeeded_at, leased_until, lease_token)
    WHERE d.id = u.id
    """
)
_ATTEMPT_COLUMNS = (
    "delivery_id",
    "attempt_no",
    "url",
    "attempted_at",
    "latency_ms",
    "status_code",
    "error_class",
    "error",
    "response_body",
)
_DELIVERY_COLUMNS = (
    "id",
    "attempts",
    "run_attempts",
    "status",
    "next_attempt_at",
    "last_attempt_at",
    "last_status_code",
    "last_error",
    "succeeded_at",
    "leased_until",
    "lease_token",
)
_SIGNER_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class _Sent:
    """An attempt made, waiting to be recorded."""

    row: Any
    token: uuid.UUID
    result: AttemptResult
    attempted_at: datetime


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
        self.tables = tables
        self.clock = clock or SystemClock()
        self.tracer = telemetry.tracer(settings.service_name, worker=True)  # None unless OTLP export is on
        self.sender = sender or Sender(
            timeout=settings.delivery_timeout_seconds,
            allowed=settings.allowed_ip_networks,
            http_allowed=settings.http_allowed,
            max_connections=settings.per_subscription_concurrency,
            excerpt_bytes=settings.response_excerpt_bytes,
        )
        self.policy = policy or RetryPolicy(
            settings.retry_schedule_seconds, settings.retry_jitter, settings.max_retry_after_seconds
        )
        self.circuit = CircuitPolicy(
            settings.circuit_failure_threshold, settings.circuit_open_seconds, settings.circuit_max_open_seconds
        )
        # A small pool of its own on the same database, without WAL-flush waits (module docstring).
        self.engine = create_async_engine(
            engine.url,
            pool_size=2,
            max_overflow=2,
            connect_args={"server_settings": {"synchronous_commit": "off"}},
        )
        self._box = secret_box(tuple(settings.secret_keys))
        self._signers: dict[str, Webhook] = {}
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._inflight: dict[uuid.UUID, tuple[uuid.UUID, asyncio.Task[None]]] = {}
        self._per_subscription: Tally[uuid.UUID] = Tally()  # requests in flight
        self._unrecorded: Tally[uuid.UUID] = Tally()  # sent or in flight, not yet recorded
        self._to_record: list[_Sent] = []
        self._recorded = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None
        self._record_ready = asyncio.Event()
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
        known = list(busy.keys() | self._unrecorded.keys())
        token = uuid.uuid4()
        async with self._autocommit.connect() as conn:
            rows = (
                await conn.execute(
                    _CLAIM_SQL,
                    {
                        "now": self.clock.now(),
                        "saturated": [s for s, n in busy.items() if n >= limit_each],
                        "busy_ids": known,
                        "busy_counts": [busy.get(s, 0) for s in known],
                        "held_counts": [self._unrecorded.get(s, 0) for s in known],
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
            self._unrecorded[row.subscription_id] += 1
            task.add_done_callback(lambda t, row=row: self._sent(t, row.id, row.subscription_id))
        return len(rows)

    def _sent(self, task: asyncio.Task[None], delivery_id: uuid.UUID, subscription_id: uuid.UUID) -> None:
        self._inflight.pop(delivery_id, None)
        _decrement(self._per_subscription, subscription_id)
        if task.cancelled() or task.exception() is not None:
            _decrement(self._unrecorded, subscription_id)  # nothing to record: its lease runs out
        self._wake.set()  # a slot is free: claim again

    async def drain(self) -> None:
        """Wait until every delivery in flight is sent and recorded."""
        while self._inflight:
            await asyncio.gather(*(task for _, task in list(self._inflight.values())), return_exceptions=True)
        while self._to_record or self._unrecorded:
            if self._recorder is None or self._recorder.done():
                break  # nothing left to record them (shutting down)
            self._recorded.clear()
            await self._recorded.wait()

    async def run_once(self) -> int:
        """Claim, send and record everything due now (tests drive the schedule with this)."""
        total = 0
        while started := await self.dispatch_due():
            total += started
            await self.drain()
        return total

    async def shutdown(self) -> None:
        """Let requests in flight finish (they are bounded by the timeout) and be recorded, then close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), timeout=self.settings.delivery_timeout_seconds + 5)
        for _, task in list(self._inflight.values()):
            task.cancel()
        if self._recorder is not None:
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)
            self._recorder = None
        await self.sender.aclose()
        await self.engine.dispose()

    # -- one delivery ----------------------------------------------------------------------

    async def _deliver(self, row: Any, token: uuid.UUID) -> None:
        attempted_at = self.clock.now()
        try:
            secrets = [self._signer(row.secret)]
            if row.previous_secret and row.previous_secret_expires_at and attempted_at < row.previous_secret_expires_at:
                secrets.append(self._signer(row.previous_secret))
            headers = signature_headers(str(row.id), row.body, secrets, datetime.now(UTC))
        except ValueError as exc:
            result = AttemptResult(Outcome(error_class=ErrorClass.OTHER), 0, error=str(exc))
        else:
            span = None
            if self.tracer is None:
                if traceparent := traceparent_header(row.body):
                    headers["traceparent"] = traceparent
            elif parent := envelope_traceparent(row.body):
                # A client span in the event's trace; the receiver gets it as its parent.
                span, headers["traceparent"] = telemetry.start_span(
                    self.tracer, "POST", telemetry.SpanKind.CLIENT, parent, _client_span_attributes(row)
                )
            result = await self.sender.post(row.url, row.body.encode(), headers, endpoint=row.subscription_id)
            if span is not None:
                _end_client_span(span, result)
        ATTEMPTS.labels("succeeded" if result.outcome.succeeded else (result.outcome.error_class or "failed")).inc()
        LATENCY.observe(result.latency_ms / 1000)
        self._to_record.append(_Sent(row, token, result, attempted_at))
        self._record_ready.set()
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_loop())

    def _signer(self, ciphertext: str) -> Webhook:
        """The signer for a sealed secret (decrypted once; a rotated secret is another ciphertext)."""
        signer = self._signers.get(ciphertext)
        if signer is None:
            if len(self._signers) >= _SIGNER_CACHE_SIZE:
                self._signers.clear()
            signer = self._signers[ciphertext] = Webhook(self._box.open(ciphertext))
        return signer

    # -- recording -------------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            await self._record_ready.wait()
            self._record_ready.clear()
            while self._to_record:
                batch = self._to_record[: self.settings.record_batch_size]
                del self._to_record[: len(batch)]
                await self._record_batch(batch)
                for sent in batch:
                    _decrement(self._unrecorded, sent.row.subscription_id)
                self._wake.set()  # e.g. a half-open endpoint's probe is recorded
            self._recorded.set()

    async def _record_batch(self, batch: list[_Sent]) -> None:
        try:
            await self._record(batch)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried below, one by one
            if len(batch) == 1:
                log.warning("recording webhook attempt %s failed: %s", batch[0].row.id, exc)
            else:
                log.warning("recording %d webhook attempts failed (%s); recording them one by one", len(batch), exc)
        for sent in batch:
            delay = 0.2
            for _ in range(8):
                try:
                    await self._record([sent])
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - in the end the lease runs out and it is resent
                    log.warning("recording webhook attempt %s failed: %s", sent.row.id, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            else:
                log.error("gave up recording webhook attempt %s; it will be sent again after its lease", sent.row.id)

    async def _record(self, batch: list[_Sent]) -> None:
        uow = self.uow()
        async with uow:
            active = await self._record_health(uow, [sent for sent in batch if sent.row.kind == db.EVENT])
            locked = await uow.execute(_LOCK_DELIVERIES_SQL, {"ids": sorted({sent.row.id for sent in batch})})
            current = {row.id: dict(row._mapping) for row in locked}
            attempts: list[tuple[Any, ...]] = []
            for sent in batch:
                state = current.get(sent.row.id)
                if state is None:
                    continue  # deleted with its subscription meanwhile
                outcome, result = sent.result.outcome, sent.result
                state["attempts"] += 1
                attempts.append(
                    (
                        sent.row.id,
                        state["attempts"],
                        sent.row.url,
                        sent.attempted_at,
                        result.latency_ms,
                        outcome.status_code,
                        outcome.error_class,
                        result.error,
                        result.body_excerpt,
                    )
                )
                state.update(
                    last_attempt_at=sent.attempted_at, last_status_code=outcome.status_code, last_error=result.error
                )
                if state["lease_token"] != sent.token:
                    continue  # replayed (or taken over) while in flight: logged, decides nothing
                state.update(self._decide(sent, state["run_attempts"] + 1, active.get(sent.row.subscription_id, True)))
            if attempts:
                await uow.execute(_INSERT_ATTEMPTS_SQL, _columns(_ATTEMPT_COLUMNS, attempts))
                rows = [tuple(state[c] for c in _DELIVERY_COLUMNS) for state in current.values()]
                await uow.execute(_UPDATE_DELIVERIES_SQL, _columns(_DELIVERY_COLUMNS, rows))
            await uow.commit()

    def _decide(self, sent: _Sent, run_attempts: int, subscription_active: bool) -> dict[str, Any]:
        """The delivery's next state after an attempt made under its current lease."""
        outcome = sent.result.outcome
        decision = self.policy.after(outcome, run_attempts, sent.attempted_at, retry=sent.row.kind == db.EVENT)
        if outcome.succeeded:
            status = db.SUCCEEDED
        elif decision.next_attempt_at is not None:
            status = db.PENDING
        else:
            status = db.FAILED
        if status == db.PENDING and sent.row.kind == db.EVENT and not subscription_active:
            status = db.PAUSED  # disabled meanwhile (by this attempt or another)
        return {
            "run_attempts": run_attempts,
            "status": status,
            "next_attempt_at": decision.next_attempt_at,
            "succeeded_at": sent.attempted_at if outcome.succeeded else None,
            "leased_until": None,
            "lease_token": None,
        }

    async def _record_health(self, uow: UnitOfWork, sent: list[_Sent]) -> dict[uuid.UUID, bool]:
        """Tell each subscription how its attempts went, in order; returns whether each is active.

        Read without a lock first: only a subscription whose health changes is locked (in id
        order), read again and written.
        """
        by_subscription: dict[uuid.UUID, list[_Sent]] = {}
        for item in sent:
            by_subscription.setdefault(item.row.subscription_id, []).append(item)
        if not by_subscription:
            return {}
        subscriptions = SubscriptionRepository(uow)
        query = select(db.subscriptions).where(db.subscriptions.c.id.in_(list(by_subscription)))
        loaded = {row.id: subscriptions.from_row(row) for row in await uow.execute(query)}
        active = {}
        for subscription_id in sorted(by_subscription):
            subscription = loaded.get(subscription_id)
            if subscription is None:
                continue  # deleted meanwhile
            if self._apply_health(copy.deepcopy(subscription), by_subscription[subscription_id]):
                subscription = await subscriptions.get(subscription_id, None, for_update=True)
                if subscription is None:
                    continue
                if self._apply_health(subscription, by_subscription[subscription_id]):
                    await self._health_changed(subscriptions, subscription)
            active[subscription_id] = subscription.active
        return active

    def _apply_health(self, subscription: Subscription, sent: list[_Sent]) -> bool:
        """Tell the subscription how its attempts went; returns whether that changed it."""
        changed = False
        for item in sent:
            outcome = item.result.outcome
            if outcome.succeeded:
                changed |= subscription.record_success(item.attempted_at)
            else:
                changed |= subscription.record_failure(
                    item.attempted_at,
                    disable_after=timedelta(seconds=self.settings.disable_after_failing_seconds),
                    gone=outcome.gone,
                    status_code=outcome.status_code,
                    circuit=self.circuit,
                )
        return changed

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


def _client_span_attributes(row: Any) -> dict[str, str | int]:
    # Host and port only: a subscriber's path or query may hold a token of theirs.
    parts = urlsplit(row.url)
    attributes: dict[str, str | int] = {
        "http.request.method": "POST",
        "url.scheme": parts.scheme,
        "server.address": parts.hostname or "",
        "salesline.webhook.delivery_id": str(row.id),
        "salesline.webhook.subscription_id": str(row.subscription_id),
    }
    with contextlib.suppress(ValueError):  # a bad port: the sender refuses the URL itself
        attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return attributes


def _end_client_span(span: telemetry.Span, result: AttemptResult) -> None:
    outcome = result.outcome
    if outcome.status_code is not None:
        span.set_attribute("http.response.status_code", outcome.status_code)
    if not outcome.succeeded:
        error = outcome.error_class or str(outcome.status_code)
        span.set_attribute("error.type", error)
        span.set_status(telemetry.Status(telemetry.StatusCode.ERROR, error))
    span.end()


def _decrement(tally: Tally[uuid.UUID], key: uuid.UUID) -> None:
    tally[key] -= 1
    if tally[key] <= 0:
        del tally[key]


def _columns(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Rows as one array per column, for ``unnest``."""
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}
