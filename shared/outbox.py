"""The outbox relay: publishes committed outbox rows to RabbitMQ.

A relay claims a batch of unsent rows with ``FOR UPDATE SKIP LOCKED`` and pushes their
``available_at`` forward by a lease, so several relay replicas never publish the same row on
purpose; a relay that dies mid-batch leaves rows that become claimable again when the lease
ends (their redelivery is absorbed by the consumers' inbox). The batch is published on a
channel with publisher confirms, ``mandatory`` and ``on_return_raises``; only rows whose
confirm arrived are marked sent. An unroutable event (no queue bound yet) is not dropped: it
is retried with back-off. The relay sleeps until it is notified that rows were committed (the
unit of work wakes it after its commit, see ``shared.wakeup``), or ``relay_poll_seconds`` passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter as Tally

import aio_pika
import asyncpg
from aio_pika.abc import AbstractConnection, DeliveryMode
from aiormq.exceptions import PublishError
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared import telemetry
from shared.bus import BROKER_ERRORS, declare_exchange, run_connected
from shared.config import ServiceSettings
from shared.db import PlatformTables, asyncpg_dsn
from shared.events.base import CONTENT_TYPE
from shared.wakeup import notify_channel

log = logging.getLogger("salesline.outbox")

# By event type too: e.g. ticket.sla_breached.v1 counts SLA breaches, webhook_subscription.disabled.v1
# disabled webhook endpoints (the catalog bounds the label's values).
PUBLISHED = Counter("salesline_outbox_published_total", "Outbox rows published and confirmed", ["service", "type"])
UNROUTABLE = Counter("salesline_outbox_unroutable_total", "Outbox rows returned unroutable", ["service"])


class OutboxRelay:
    def __init__(self, settings: ServiceSettings, engine: AsyncEngine, tables: PlatformTables) -> None:
        self.settings = settings
        self.engine = engine
        # The relay's own writes (claim leases, sent marks, releases) need not wait for the WAL
        # flush: one lost in a crash only means a row is claimed or published again, which the
        # lease and the consumers' inbox already absorb. Skipping two fsyncs per cycle takes
        # them off the path of every event.
        self._relay_engine = create_async_engine(
            settings.database_url(),
            pool_size=2,
            max_overflow=2,
            connect_args={"server_settings": {"synchronous_commit": "off"}},
        )
        # The claim, and the mark-sent of a batch that was all confirmed, are single statements,
        # atomic on their own: autocommit sends each in one round trip, not three (BEGIN,
        # statement, COMMIT), which shortens every relay cycle (measured, benchmarks/).
        self._autocommit = self._relay_engine.execution_options(isolation_level="AUTOCOMMIT")
        self.relay_id = uuid.uuid4().hex[:8]
        self.tracer = telemetry.tracer(settings.service_name, worker=True)  # None unless OTLP export is on
        self._wake = asyncio.Event()
        table = f'"{tables.outbox.schema}"."{tables.outbox.name}"'
        self._claim_sql = text(
            f"""
            UPDATE {table} SET available_at = now() + make_interval(secs => :lease)
            WHERE id IN (
                SELECT id FROM {table}
                WHERE sent_at IS NULL AND available_at <= now()
                ORDER BY available_at, id
                LIMIT :limit
                FOR UPDATE SKIP LOCKED)
            RETURNING id, event_id, event_type, envelope, attempts
            """
        )
        self._mark_sent_sql = text(f"UPDATE {table} SET sent_at = now() WHERE id = ANY(:ids)")
        self._release_sql = text(
            f"""UPDATE {table} SET attempts = attempts + 1, last_error = :error,
                available_at = now() + make_interval(secs => least(60, 0.5 * power(2, least(attempts, 7))))
                WHERE id = ANY(:ids)"""
        )
        self._purge_sql = text(f"DELETE FROM {table} WHERE sent_at < now() - make_interval(secs => :retention)")

    async def run(self, stopping: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stopping))
        purger = asyncio.create_task(self._purge_periodically(stopping))
        try:
            await run_connected(self.settings, f"relay-{self.relay_id}", self._session, stopping)
        finally:
            listener.cancel()
            purger.cancel()
            await asyncio.gather(listener, purger, return_exceptions=True)
            await self._relay_engine.dispose()

    async def _session(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await declare_exchange(channel, self.settings)
        while True:
            self._wake.clear()
            published = await self.relay_once(exchange)
            if not published:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
                # that arrives as the wake-up does, and this loop would then never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.relay_poll_seconds):
                        await self._wake.wait()

    async def relay_once(self, exchange: aio_pika.abc.AbstractExchange) -> int:
        """Claim, publish and mark one batch; returns how many rows it handled."""
        async with self._autocommit.connect() as conn:
            rows = (
                await conn.execute(
                    self._claim_sql,
                    {"lease": self.settings.relay_lease_seconds, "limit": self.settings.relay_batch_size},
                )
            ).all()
        if not rows:
            return 0
        traced = telemetry.PublishSpans(self.tracer, exchange.name, rows) if self.tracer else None
        results = await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body=row.envelope.encode(),
                        message_id=str(row.event_id),
                        type=row.event_type,
                        content_type=CONTENT_TYPE,
                        delivery_mode=DeliveryMode.PERSISTENT,
                        headers=traced.headers(i) if traced is not None else None,
                    ),
                    routing_key=row.event_type,
                    mandatory=True,
                )
                for i, row in enumerate(rows)
            ),
            return_exceptions=True,
        )
        if traced is not None:
            traced.end(results)
        sent: list[int] = []
        sent_types: Tally[str] = Tally()
        unroutable: list[int] = []
        first_unroutable: list[str] = []
        broker_error: BaseException | None = None
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, PublishError):
                unroutable.append(row.id)
                if row.attempts == 0:
                    first_unroutable.append(row.event_type)
            elif isinstance(result, BaseException):
                broker_error = broker_error or result
            else:
                sent.append(row.id)
                sent_types[row.event_type] += 1
        # With rows to release as well, marking and releasing stay one transaction.
        connect = self._relay_engine.begin if unroutable else self._autocommit.connect
        async with connect() as conn:
            if sent:
                await conn.execute(self._mark_sent_sql, {"ids": sent})
            if unroutable:
                await conn.execute(self._release_sql, {"ids": unroutable, "error": "unroutable: no queue bound"})
        if sent:
            for event_type, n in sent_types.items():
                PUBLISHED.labels(self.settings.service_name, event_type).inc(n)
        if unroutable:
            UNROUTABLE.labels(self.settings.service_name).inc(len(unroutable))
            if first_unroutable:
                log.warning(
                    "no queue is bound for %s yet; retrying with back-off until one is",
                    ", ".join(sorted(set(first_unroutable))),
                )
        if broker_error is not None:
            # Rows without a confirm are reclaimed when their lease ends (perhaps published twice).
            raise broker_error
        return len(rows)

    async def _listen(self, stopping: asyncio.Event) -> None:
        """Wake the relay on NOTIFY; on any failure, reconnect (polling covers the gap)."""
        channel = notify_channel(self.settings.schema)
        while not stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self.settings), timeout=5)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                await conn.add_listener(channel, lambda *_: self._wake.set())
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect later
                log.debug("outbox listener lost PostgreSQL: %s", exc)
                await asyncio.sleep(1.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)

    async def _purge_periodically(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(self._purge_sql, {"retention": self.settings.outbox_retention_hours * 3600})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - purging is housekeeping; try again later
                log.debug("outbox purge failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=300)


__all__ = ["BROKER_ERRORS", "OutboxRelay", "notify_channel"]
