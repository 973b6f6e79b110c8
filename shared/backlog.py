"""Backlog gauges of a worker, sampled periodically (never per scrape: a scrape storm must not
turn into a query storm).

Every ``metrics_sample_seconds`` each worker process sets:

- ``salesline_outbox_backlog{service}``: unsent outbox rows, and
  ``salesline_outbox_oldest_unsent_seconds{service}``: the age of the oldest one (0 when none);
- ``salesline_timers_due{service}``: timers due and not fired, and
  ``salesline_timers_oldest_due_seconds{service}``: how late the oldest of them is;
- ``salesline_consumer_queue_depth{consumer}``: messages ready in the consumer's queue (its lag),
  and ``salesline_dead_letters{consumer}``: messages in its dead-letter queue;
- any service-specific :class:`SqlGauge` (e.g. pending webhook deliveries).

Replicas of a worker report the same shared values: aggregate with ``max``, not ``sum``. The
queries use the partial indexes on unsent outbox rows and unfired timers. Queue depths come from
passive declarations on a connection of its own, so a broker outage leaves the database gauges
running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractConnection
from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import dead_letter_queue_name, run_connected
from shared.config import ServiceSettings
from shared.db import PlatformTables
from shared.inbox import Subscription

log = logging.getLogger("salesline.metrics")

OUTBOX_BACKLOG = Gauge("salesline_outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST = Gauge(
    "salesline_outbox_oldest_unsent_seconds", "Age of the oldest unpublished outbox row (0 if none)", ["service"]
)
TIMERS_DUE = Gauge("salesline_timers_due", "Durable timers due and not fired yet", ["service"])
TIMERS_OLDEST = Gauge(
    "salesline_timers_oldest_due_seconds",
    "How long the oldest due, unfired timer has been due (0 if none)",
    ["service"],
)
QUEUE_DEPTH = Gauge("salesline_consumer_queue_depth", "Messages ready in the consumer's queue (lag)", ["consumer"])
DEAD_LETTERS = Gauge("salesline_dead_letters", "Messages in the consumer's dead-letter queue", ["consumer"])


@dataclass(frozen=True)
class SqlGauge:
    """A service-specific gauge: ``sql`` returns one number (cheap: an indexed count)."""

    gauge: Gauge
    sql: str


class BacklogSampler:
    def __init__(
        self,
        settings: ServiceSettings,
        engine: AsyncEngine,
        tables: PlatformTables,
        subscriptions: Sequence[Subscription] = (),
        extra: Sequence[SqlGauge] = (),
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.subscriptions = list(subscriptions)
        self.extra = list(extra)
        outbox = f'"{tables.outbox.schema}"."{tables.outbox.name}"'
        timers = f'"{tables.timers.schema}"."{tables.timers.name}"'
        self._sql = text(
            f"""SELECT o.backlog, o.oldest, t.due, t.oldest AS oldest_due FROM
                (SELECT count(*) AS backlog, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest
                 FROM {outbox} WHERE sent_at IS NULL) o,
                (SELECT count(*) AS due, coalesce(extract(epoch FROM now() - min(due_at)), 0) AS oldest
                 FROM {timers} WHERE fired_at IS NULL AND due_at <= now()) t"""
        )

    async def run(self, stopping: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._sample_database(stopping))]
        if self.subscriptions:
            tasks.append(asyncio.create_task(run_connected(self.settings, "metrics", self._broker_session, stopping)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def sample_database(self) -> None:
        service = self.settings.service_name
        async with self.engine.connect() as conn:
            row = (await conn.execute(self._sql)).one()
            OUTBOX_BACKLOG.labels(service).set(row.backlog)
            OUTBOX_OLDEST.labels(service).set(float(row.oldest))
            TIMERS_DUE.labels(service).set(row.due)
            TIMERS_OLDEST.labels(service).set(float(row.oldest_due))
            for extra in self.extra:
                extra.gauge.set(float((await conn.execute(text(extra.sql))).scalar_one() or 0))

    async def sample_queues(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        try:
            for subscription in self.subscriptions:
                queue = self.settings.queue_name(subscription.name)
                # Passive: a queue not declared yet is an error (the consumer declares it), not a new queue.
                main = await channel.declare_queue(queue, passive=True)
                dlq = await channel.declare_queue(dead_letter_queue_name(queue), passive=True)
                QUEUE_DEPTH.labels(subscription.name).set(main.declaration_result.message_count)
                DEAD_LETTERS.labels(subscription.name).set(dlq.declaration_result.message_count)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _sample_database(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.sample_database()
            except Exception as exc:  # noqa: BLE001 - the gauges keep their last value; try again
                log.debug("backlog sample failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self.settings.metrics_sample_seconds)

    async def _broker_session(self, connection: AbstractConnection) -> None:
        while True:
            try:
                await self.sample_queues(connection)
            except Exception as exc:
                if connection.is_closed:
                    raise
                log.debug("queue depth sample failed: %s", exc)
            await asyncio.sleep(self.settings.metrics_sample_seconds)
