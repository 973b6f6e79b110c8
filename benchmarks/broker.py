"""The benchmark's broker resources: its queues (declared like a real consumer's) and their cleanup."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator

import aio_pika

from shared.bus import connect, dead_letter_queue_name, declare_consumer_queues, retry_queue_name
from shared.config import ServiceSettings

# Every queue and exchange this run declared (full names), deleted at the end.
DECLARED: set[str] = set()
EXCHANGES: set[str] = set()


def remember_service_queues() -> None:
    """The queues ``shared.migrate`` declared for every service's consumers under our prefix."""
    from shared.migrate import SERVICES, service_settings

    for service in SERVICES:
        settings = service_settings(service)
        EXCHANGES.add(settings.exchange)
        for subscription in importlib.import_module(f"services.{service}.consumers").SUBSCRIPTIONS:
            remember_queue(settings, subscription.name)


@contextlib.contextmanager
def own_exchange(suffix: str) -> Iterator[str]:
    """Run a benchmark (and the children it spawns) on an exchange of its own.

    The services' queues that ``shared.migrate`` declared are bound to the main benchmark
    exchange, one of them to ``#``; a benchmark of its own events must not feed them copies.
    """
    previous = os.environ["SALESLINE_EXCHANGE"]
    exchange = os.environ["SALESLINE_EXCHANGE"] = f"{previous}.{suffix}"
    EXCHANGES.add(exchange)
    try:
        yield exchange
    finally:
        os.environ["SALESLINE_EXCHANGE"] = previous


async def declare_queue(settings: ServiceSettings, consumer: str, binding_keys: list[str]) -> str:
    """Declare ``consumer``'s quorum queue, delay queues and dead-letter queue; returns its name."""
    name = settings.queue_name(consumer)
    DECLARED.add(name)
    EXCHANGES.add(settings.exchange)
    connection = await connect(settings, name="bench-setup")
    async with connection:
        await declare_consumer_queues(await connection.channel(), settings, name, binding_keys)
    return name


def remember_queue(settings: ServiceSettings, consumer: str) -> str:
    """A queue someone else (a real worker) declares; deleted at the end all the same."""
    name = settings.queue_name(consumer)
    DECLARED.add(name)
    return name


class QueueProbe:
    """Reads a queue's depth (ready messages) and consumer count without touching its messages."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> QueueProbe:
        self._connection = await connect(self.settings, name="bench-probe")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def depth(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers); (-1, -1) while the queue does not exist."""
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result
            return result.message_count or 0, result.consumer_count or 0
        except aio_pika.exceptions.ChannelClosed:
            return -1, -1
        finally:
            with contextlib.suppress(Exception):
                await channel.close()


async def delete_declared(settings: ServiceSettings) -> None:
    """Delete every queue of this run (with its delay and dead-letter queues) and its exchanges."""
    connection = await connect(settings, name="bench-cleanup")
    async with connection:
        names = set()
        for queue in DECLARED:
            names |= {queue, dead_letter_queue_name(queue)}
            names |= {retry_queue_name(queue, delay) for delay in settings.retry_delays_ms}
        for name in sorted(names):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
            with contextlib.suppress(Exception):
                await channel.close()
        for exchange in sorted(EXCHANGES | {settings.exchange}):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
            with contextlib.suppress(Exception):
                await channel.close()
    DECLARED.clear()
    EXCHANGES.clear()
