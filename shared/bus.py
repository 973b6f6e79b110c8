"""RabbitMQ plumbing: the one topic exchange, per-consumer queue topology, and a connection
loop that survives broker restarts.

Why not ``connect_robust``: its restored objects are weak references, consumers can come
back with zero consumers after a broker restart, and deliveries from before a reconnect
raise on ack. Each long-running component here instead opens a plain connection, declares
its whole topology, works until the connection closes, then backs off and starts over from
scratch. Unacked deliveries of the dead connection are redelivered by the broker; the inbox
makes their effect happen once.

Topology for a consumer queue ``q`` (all durable):

* ``q``                quorum queue bound to the exchange by the event types it handles;
                       dead-letters (delivery limit exceeded: e.g. a message that crashes the
                       process every time) to ``q.dlq``;
* ``q.retry.<ms>``     one delay queue per retry step: messages wait ``<ms>`` there, then
                       dead-letter back into ``q`` through the default exchange;
* ``q.dlq``            quorum queue of dead letters, listed and replayed by ``shared.ops``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, ExchangeType

from shared.config import ServiceSettings

log = logging.getLogger("salesline.bus")

RETRY_HEADER = "x-salesline-retries"
ERROR_HEADER = "x-salesline-error"

# What a lost or refused broker connection raises, as opposed to a bug in our code.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def retry_queue_name(queue: str, delay_ms: int) -> str:
    return f"{queue}.retry.{delay_ms}"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dlq"


async def connect(settings: ServiceSettings, *, name: str) -> AbstractConnection:
    return await aio_pika.connect(
        settings.amqp_url,
        timeout=5,
        client_properties={"connection_name": f"{settings.service_name}:{name}"},
        heartbeat=15,
    )


async def declare_exchange(channel: AbstractChannel, settings: ServiceSettings) -> AbstractExchange:
    return await channel.declare_exchange(settings.exchange, ExchangeType.TOPIC, durable=True)


async def declare_consumer_queues(
    channel: AbstractChannel,
    settings: ServiceSettings,
    queue: str,
    binding_keys: list[str],
) -> aio_pika.abc.AbstractQueue:
    exchange = await declare_exchange(channel, settings)
    dlq = dead_letter_queue_name(queue)
    await channel.declare_queue(dlq, durable=True, arguments={"x-queue-type": "quorum"})
    main = await channel.declare_queue(
        queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dlq,
            # Redeliveries without an ack (a handler that kills the process) count here; a
            # handler that raises goes through the retry queues instead.
            "x-delivery-limit": max(settings.delivery_limit * 4, 20),
        },
    )
    for delay_ms in settings.retry_delays_ms:
        await channel.declare_queue(
            retry_queue_name(queue, delay_ms),
            durable=True,
            arguments={
                "x-message-ttl": delay_ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
            },
        )
    for key in binding_keys:
        await main.bind(exchange, routing_key=key)
    return main


async def run_connected(
    settings: ServiceSettings,
    name: str,
    session: Callable[[AbstractConnection], Awaitable[None]],
    stopping: asyncio.Event,
) -> None:
    """Run ``session(connection)`` until ``stopping`` is set, reconnecting after any loss.

    ``session`` should return (or raise) when it can no longer work; it is called again on a
    fresh connection after a back-off of 0.2 s doubling up to 5 s.
    """
    backoff = 0.2
    while not stopping.is_set():
        connection: AbstractConnection | None = None
        try:
            connection = await connect(settings, name=name)
            log.info("%s connected to the broker", name)
            backoff = 0.2
            # `connection.closed()` only resolves on a close we asked for; a broker that goes
            # away is reported through the close callbacks.
            lost = asyncio.Event()
            connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
            session_task = asyncio.ensure_future(session(connection))
            stop_task = asyncio.ensure_future(stopping.wait())
            closed_task = asyncio.ensure_future(lost.wait())
            done, _ = await asyncio.wait({session_task, stop_task, closed_task}, return_when=asyncio.FIRST_COMPLETED)
            for task in (session_task, stop_task, closed_task):
                if task not in done:
                    task.cancel()
            await asyncio.gather(session_task, stop_task, closed_task, return_exceptions=True)
            if session_task in done and session_task.exception() is not None:
                raise session_task.exception()  # type: ignore[misc]
        except BROKER_ERRORS as exc:
            log.warning("%s lost the broker (%s: %s); retrying in %.1fs", name, type(exc).__name__, exc, backoff)
        except Exception:
            log.exception("%s failed; restarting it in %.1fs", name, backoff)
        finally:
            if connection is not None and not connection.is_closed:
                try:
                    await asyncio.wait_for(connection.close(), timeout=2)
                except Exception:  # noqa: BLE001 - the connection is being thrown away anyway
                    pass
        if stopping.is_set():
            break
        try:
            await asyncio.wait_for(stopping.wait(), timeout=backoff)
        except TimeoutError:
            pass
        backoff = min(backoff * 2, 5.0)
