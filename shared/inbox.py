"""Idempotent consumers: the consumer runner and its inbox.

A subscription names one consumer (one quorum queue) and the event types it handles::

    SUBSCRIPTIONS = [Subscription("orders.contract_signed", on_contract_signed, events=(ContractSigned,))]

The runner takes every message already waiting on a queue (up to ``consumer_batch_size``)
and handles them in one transaction: it inserts the batch's ``(consumer, event_id)`` inbox
rows with ``ON CONFLICT DO NOTHING``, runs the handler only for the events that were new,
commits, and only then acks. A redelivered event therefore has its effect once.

If a batch fails, it is rolled back and its messages are handled one by one, so one poison
event never holds up the others. A message whose handler raises is re-published to the
consumer's delay queues (e.g. 10 s, 1 min, 10 min) and, after the last, to its dead-letter
queue; the original is acked only after that publish is confirmed. While the database is
unreachable the runner keeps its messages unacked and retries, instead of burning retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, DeliveryMode
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import Table, TextClause, text
from sqlalchemy import exc as sa_exc

from shared import telemetry
from shared.bus import (
    BROKER_ERRORS,
    ERROR_HEADER,
    RETRY_HEADER,
    dead_letter_queue_name,
    declare_consumer_queues,
    retry_queue_name,
    run_connected,
)
from shared.config import ServiceSettings
from shared.context import EventContext, child_traceparent, current_context
from shared.events.base import EVENT_TYPES, CloudEvent, Event
from shared.uow import UnitOfWork

log = logging.getLogger("salesline.inbox")

CONSUMED = Counter("salesline_events_consumed_total", "Events handled (first delivery)", ["consumer"])
DUPLICATES = Counter("salesline_events_duplicate_total", "Redelivered events skipped by the inbox", ["consumer"])
FAILED = Counter("salesline_events_failed_total", "Handler failures sent to retry or dead letter", ["consumer"])
DEAD_LETTERED = Counter("salesline_events_dead_lettered_total", "Messages moved to the dead-letter queue", ["consumer"])

Handler = Callable[[Any, UnitOfWork], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """One consumer: its queue (``name``), handler and what it is bound to.

    With ``events`` the handler receives the typed event data; with ``patterns`` (raw
    binding keys such as ``"#"``) it receives the whole :class:`CloudEvent`. Either way the
    envelope being handled is ``uow.message``.
    """

    name: str
    handler: Handler
    events: tuple[type[Event], ...] = ()
    patterns: tuple[str, ...] = ()

    @property
    def binding_keys(self) -> list[str]:
        return [e.routing_key() for e in self.events] + list(self.patterns)

    def parse(self, envelope: CloudEvent) -> Any:
        if self.patterns:
            return envelope
        return EVENT_TYPES[envelope.type].model_validate(envelope.data)


class PoisonMessage(Exception):
    """A message that can never be handled (unparseable, or of a type this consumer does not know)."""


@dataclass
class _Delivery:
    message: AbstractIncomingMessage
    envelope: CloudEvent | None = None
    data: Any = None


@functools.cache
def _inbox_insert(inbox: Table) -> TextClause:
    """Record a batch's ``(consumer, event id)`` rows; returns the ids that were new.

    One statement of constant text for every batch size (arrays, not a multi-row ``VALUES``),
    so it is prepared once per connection instead of being rebuilt and re-keyed per batch.
    """
    return text(
        f"""INSERT INTO "{inbox.schema}"."{inbox.name}" (consumer, event_id, event_type)
            SELECT :consumer, e.id, e.type FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) AS e(id, type)
            ON CONFLICT DO NOTHING RETURNING event_id"""
    )


def _is_database_outage(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa_exc.InterfaceError, sa_exc.OperationalError, OSError, ConnectionError))


class ConsumerRunner:
    def __init__(
        self,
        settings: ServiceSettings,
        subscriptions: Sequence[Subscription],
        uow_factory: Callable[[], UnitOfWork],
    ) -> None:
        self.settings = settings
        self.subscriptions = list(subscriptions)
        self.uow_factory = uow_factory
        self.tracer = telemetry.tracer(settings.service_name, worker=True)  # None unless OTLP export is on

    async def run(self, stopping: asyncio.Event) -> None:
        if self.subscriptions:
            await run_connected(self.settings, "consumers", self._session, stopping)

    async def _session(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.settings.consumer_prefetch)
        workers = []
        for subscription in self.subscriptions:
            queue_name = self.settings.queue_name(subscription.name)
            queue = await declare_consumer_queues(channel, self.settings, queue_name, subscription.binding_keys)
            inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            await queue.consume(inbox.put, no_ack=False)
            workers.append(asyncio.create_task(self._drain(subscription, queue_name, channel, inbox)))
        try:
            # Runs until the connection closes (run_connected then cancels us and reconnects).
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _drain(
        self,
        subscription: Subscription,
        queue_name: str,
        channel: AbstractChannel,
        inbox: asyncio.Queue[AbstractIncomingMessage],
    ) -> None:
        while True:
            batch = [await inbox.get()]
            while len(batch) < self.settings.consumer_batch_size and not inbox.empty():
                batch.append(inbox.get_nowait())
            await self.handle_batch(subscription, queue_name, channel, batch)

    async def handle_batch(
        self,
        subscription: Subscription,
        queue_name: str,
        channel: AbstractChannel,
        messages: list[AbstractIncomingMessage],
    ) -> None:
        deliveries: list[_Delivery] = []
        for message in messages:
            try:
                deliveries.append(self._parse(subscription, message))
            except PoisonMessage as exc:
                await self._give_up(channel, queue_name, message, exc, dead_letter=True)
        if not deliveries:
            return
        try:
            await self._handle_waiting_out_outages(subscription, deliveries)
        except Exception as exc:  # noqa: BLE001 - any handler failure goes to retry, not up
            if len(deliveries) == 1:
                await self._after_failure(subscription, queue_name, channel, deliveries[0], exc)
                return
            log.info("batch of %d for %s failed (%s); handling one by one", len(deliveries), queue_name, exc)
            for delivery in deliveries:
                try:
                    await self._handle_waiting_out_outages(subscription, [delivery])
                except Exception as single_exc:  # noqa: BLE001 - as above
                    await self._after_failure(subscription, queue_name, channel, delivery, single_exc)
                else:
                    await _ack(delivery.message)
            return
        for delivery in deliveries:
            await _ack(delivery.message)

    def _parse(self, subscription: Subscription, message: AbstractIncomingMessage) -> _Delivery:
        try:
            envelope = CloudEvent.model_validate_json(message.body)
            return _Delivery(message, envelope, subscription.parse(envelope))
        except (ValidationError, KeyError, ValueError) as exc:
            raise PoisonMessage(f"unreadable event: {type(exc).__name__}: {str(exc)[:300]}") from exc

    async def _handle_waiting_out_outages(self, subscription: Subscription, deliveries: list[_Delivery]) -> None:
        """A database outage is not the message's fault: keep it unacked and try again."""
        delay = 0.2
        while True:
            try:
                return await self._handle_in_one_transaction(subscription, deliveries)
            except Exception as exc:
                if not _is_database_outage(exc):
                    raise
                log.warning("database unavailable for %s (%s); retrying in %.1fs", subscription.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _handle_in_one_transaction(self, subscription: Subscription, deliveries: list[_Delivery]) -> None:
        # Each event's consumer span ends once its effect is committed (or failed with the batch).
        spans: list[telemetry.Span] = []
        try:
            await self._handle_and_commit(subscription, deliveries, spans)
        except BaseException as exc:
            for span in spans:
                telemetry.fail(span, exc)
            raise
        finally:
            for span in spans:
                span.end()

    def _handling_traceparent(
        self, subscription: Subscription, delivery: _Delivery, spans: list[telemetry.Span]
    ) -> str:
        """The trace context a handler runs in: a span of the event's trace (a consumer span when
        exporting, linked to the relay's publish span), so what it emits has it as parent."""
        envelope = delivery.envelope
        if self.tracer is None:
            return child_traceparent(envelope.traceparent)
        span, traceparent = telemetry.start_span(
            self.tracer,
            f"process {envelope.type}",
            telemetry.SpanKind.CONSUMER,
            envelope.traceparent,
            {
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": subscription.name,
                "messaging.message.id": str(envelope.id),
                "messaging.rabbitmq.destination.routing_key": envelope.type,
            },
            links=telemetry.link_to((delivery.message.headers or {}).get(telemetry.PUBLISH_HEADER)),
        )
        spans.append(span)
        return traceparent

    async def _handle_and_commit(
        self, subscription: Subscription, deliveries: list[_Delivery], spans: list[telemetry.Span]
    ) -> None:
        uow = self.uow_factory()
        async with uow:
            by_id = {d.envelope.id: d for d in deliveries}  # a duplicate within the batch counts once
            inserted = await uow.execute(
                _inbox_insert(uow.tables.inbox),
                {
                    "consumer": subscription.name,
                    "ids": list(by_id),
                    "types": [d.envelope.type for d in by_id.values()],
                },
            )
            new_ids: set[uuid.UUID] = {row[0] for row in inserted}
            duplicates = len(deliveries) - len(new_ids)
            for event_id, delivery in by_id.items():
                if event_id not in new_ids:
                    continue
                envelope = delivery.envelope
                token = current_context.set(
                    EventContext(
                        correlation_id=envelope.correlationid or str(envelope.id),
                        causation_id=str(envelope.id),
                        traceparent=self._handling_traceparent(subscription, delivery, spans),
                    )
                )
                try:
                    uow.message = envelope
                    await subscription.handler(delivery.data, uow)
                    uow.collect_events()
                    log.debug("%s handled %s %s", subscription.name, envelope.type, envelope.id)
                finally:
                    current_context.reset(token)
            await uow.commit()
        if new_ids:
            CONSUMED.labels(subscription.name).inc(len(new_ids))
        if duplicates:
            DUPLICATES.labels(subscription.name).inc(duplicates)

    async def _after_failure(
        self,
        subscription: Subscription,
        queue_name: str,
        channel: AbstractChannel,
        delivery: _Delivery,
        exc: BaseException,
    ) -> None:
        envelope = delivery.envelope
        log.warning(
            "handler %s failed on event %s (trace %s, %s): %s",
            subscription.name,
            envelope.id if envelope else "?",
            (envelope.traceparent or "-")[3:35] if envelope else "-",
            type(exc).__name__,
            exc,
        )
        FAILED.labels(subscription.name).inc()
        await self._give_up(channel, queue_name, delivery.message, exc, dead_letter=False)

    async def _give_up(
        self,
        channel: AbstractChannel,
        queue_name: str,
        message: AbstractIncomingMessage,
        exc: BaseException,
        *,
        dead_letter: bool,
    ) -> None:
        """Move the message to its next delay queue, or to the dead-letter queue; then ack it."""
        retries = int((message.headers or {}).get(RETRY_HEADER, 0) or 0)
        delays = self.settings.retry_delays_ms
        dead_letter = dead_letter or retries >= len(delays)
        if dead_letter:
            target = dead_letter_queue_name(queue_name)
        else:
            target = retry_queue_name(queue_name, delays[retries])
        headers = dict(message.headers or {})
        headers[RETRY_HEADER] = retries + 1
        headers[ERROR_HEADER] = f"{type(exc).__name__}: {str(exc)[:500]}"
        try:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body=message.body,
                    headers=headers,
                    message_id=message.message_id,
                    type=message.type,
                    content_type=message.content_type,
                    delivery_mode=DeliveryMode.PERSISTENT,
                ),
                routing_key=target,
                mandatory=True,
            )
        except BROKER_ERRORS:
            log.warning("could not move a failed message to %s; it will be redelivered", target)
            raise
        await _ack(message)
        if dead_letter:
            DEAD_LETTERED.labels(queue_name.removeprefix(self.settings.queue_prefix)).inc()


async def _ack(message: AbstractIncomingMessage) -> None:
    # A delivery from a connection that died cannot be acked; the broker redelivers it and
    # the inbox absorbs the repeat.
    with contextlib.suppress(*BROKER_ERRORS):
        await message.ack()
