"""Waking listeners (the outbox relays, the webhook dispatchers) after a commit, outside the
committing transaction.

PostgreSQL serialises the commits of every transaction that issued ``NOTIFY`` in a database
(a database-wide lock held through the commit's WAL flush), so a ``NOTIFY`` inside each business
transaction capped every service's writes at one WAL flush each, one after the other (measured:
about 600 transactions/s here against 1,300-1,800 without it). Instead, a unit of work that
wrote events pokes this process's waker after its commit; the waker sends one ``pg_notify`` at a
time, on a connection of its own that does not wait for the WAL flush (a lost wake-up only
delays the relay until its next poll), and folds the pokes that arrive meanwhile into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("salesline.wakeup")


def notify_channel(schema: str) -> str:
    """The channel a service's relays LISTEN on (the schema is an identifier of ours)."""
    return f"{schema}_outbox"


class Waker:
    """Sends ``pg_notify(channel)`` for the pokes of one process, one at a time, folded."""

    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        # A connection of its own: a wake-up never queues behind requests for the engine's pool.
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._sql = f"SELECT pg_notify('{channel}', '')"  # channels are identifiers of ours
        self._connection: asyncpg.Connection | None = None
        self._poked = asyncio.Event()
        self._task: asyncio.Task | None = None

    def poke(self) -> None:
        self._poked.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="waker")

    async def _run(self) -> None:
        while self._poked.is_set():
            self._poked.clear()
            try:
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(
                        self._dsn, timeout=5, server_settings={"synchronous_commit": "off"}
                    )
                await self._connection.execute(self._sql)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relays' polling covers a lost wake-up
                log.debug("could not wake the listeners: %s", exc)
                await self._disconnect()
                return

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._disconnect()


# Per engine (one per process and database), per channel; an engine's wakers go with it.
_wakers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def wake(engine: AsyncEngine, channel: str) -> None:
    """After a commit: have ``channel``'s listeners woken soon."""
    wakers: dict[str, Waker] = _wakers.setdefault(engine.sync_engine, {})
    waker = wakers.get(channel)
    if waker is None:
        waker = wakers[channel] = Waker(engine, channel)
    waker.poke()


def wake_outbox_relays(engine: AsyncEngine, schema: str) -> None:
    """After a commit that wrote outbox rows: wake the relays of ``schema`` soon."""
    wake(engine, notify_channel(schema))


async def close_wakers(engine: AsyncEngine) -> None:
    """Before disposing of ``engine``: stop its wakers' pending wake-ups."""
    for waker in _wakers.pop(engine.sync_engine, {}).values():
        await waker.close()
