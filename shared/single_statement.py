"""Several inserts sent as one statement: ``WITH w0 AS (INSERT …), … INSERT …``.

A unit of work that only inserts (a create: its row and its outbox events) needs no explicit
transaction: one statement is atomic on its own. Sent through SQLAlchemy it would be BEGIN,
one INSERT per row, COMMIT: four round trips, each through SQLAlchemy's async adaptation,
which made up most of the write path's cost beyond the bare endpoint (measured, benchmarks/).
Here each table's INSERT is compiled once by SQLAlchemy (so column types convert exactly as
they do for every other statement) and the combined text is sent on the driver connection.
PostgreSQL runs every data-modifying ``WITH`` part exactly once, whether or not it is read.

Under load, :func:`insert_atomically` goes one step further (group commit): the insert-only
units of work that reach their commit while the process's previous one is still at the server
are sent together, as one statement. Each statement costs PostgreSQL a commit and the driver a
round trip whatever its size, so a busy API pays them once per group instead of once per request.
A group that fails (one unit's unique key taken, say) is sent again unit by unit, so every unit
gets its own outcome, exactly as if it had been sent alone.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy import ClauseElement, Table, exc, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

_PARAMETER = re.compile(r"\$(\d+)")


Parameters = tuple[tuple[str, Callable[[Any], Any] | None], ...]


def compiled_text(dialect: Dialect, statement: ClauseElement, **options: Any) -> tuple[str, Parameters]:
    """The statement's text for the driver (``$1``… parameters) and, per parameter, its name
    and the converter of its type (JSON serialised, …), exactly as SQLAlchemy would send it."""
    compiled = statement.compile(dialect=dialect, **options)
    processors = compiled._bind_processors
    return str(compiled), tuple((name, processors.get(name)) for name in compiled.positiontup or ())


def driver_arguments(parameters: Parameters, values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(values[name] if convert is None else convert(values[name]) for name, convert in parameters)


@functools.cache
def compiled_insert(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> tuple[str, Parameters]:
    """The INSERT's text (``$1``… parameters) and, per parameter, its column key and converter."""
    return compiled_text(dialect, insert(table).inline(), column_keys=list(keys))  # inline: no RETURNING


@functools.cache
def _combined_text(parts: tuple[str, ...], widths: tuple[int, ...]) -> str:
    """Each part's parameters renumbered after the previous parts'; all but the last as ``WITH``."""
    renumbered, offset = [], 0
    for text, width in zip(parts, widths, strict=True):
        renumbered.append(_PARAMETER.sub(lambda m, o=offset: f"${int(m.group(1)) + o}", text))
        offset += width
    *ctes, last = renumbered
    if not ctes:
        return last
    return "WITH " + ", ".join(f"w{i} AS ({cte})" for i, cte in enumerate(ctes)) + " " + last


@functools.cache
def _multi_row_text(single_row: str, width: int, rows: int) -> str:
    """A one-row ``INSERT … VALUES (…)`` made into ``rows`` rows, parameters numbered on."""
    head, _, values = single_row.partition(" VALUES ")
    tuples = [_PARAMETER.sub(lambda m, o=i * width: f"${int(m.group(1)) + o}", values) for i in range(rows)]
    return f"{head} VALUES {', '.join(tuples)}"


def combined_insert(dialect: Dialect, writes: Sequence[tuple[Table, dict[str, Any]]]) -> tuple[str, tuple[Any, ...]]:
    """One statement inserting every ``(table, row)``, and its arguments.

    The parts of a ``WITH`` run in no guaranteed order, so the rows of a table (with the same
    columns) go in ONE multi-row ``VALUES`` part, which inserts them in order: identity ids and
    history stay in the order the rows were recorded.
    """
    groups: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for table, row in writes:
        groups.setdefault((table, tuple(row)), []).append(row)
    parts, widths, arguments = [], [], []
    for (table, keys), rows in groups.items():
        text, parameters = compiled_insert(dialect, table, keys)
        parts.append(_multi_row_text(text, len(parameters), len(rows)) if len(rows) > 1 else text)
        widths.append(len(parameters) * len(rows))
        for row in rows:
            for key, convert in parameters:
                value = row[key]
                arguments.append(value if convert is None else convert(value))
    return _combined_text(tuple(parts), tuple(widths)), tuple(arguments)


async def execute_as_one_statement(engine: AsyncEngine, writes: Sequence[tuple[Table, dict[str, Any]]]) -> None:
    """Insert every ``(table, row)``, in order, as one statement on a connection of its own
    (checked out of ``engine``'s pool just for it, outside any explicit transaction)."""
    sql, arguments = combined_insert(engine.dialect, writes)
    await _on_pooled_connection(engine, sql, arguments, lambda connection: connection.execute(sql, *arguments))


# A statement still at the server after this long (waiting for a lock, say) is left to finish on
# its own and the next group goes: one stuck unit must not hold up every create of the process.
STUCK_AFTER_SECONDS = 0.05
# Rows sent together at most: a bound on the statement's parameters (the driver takes 32,767)
# and on how long the first unit of a group waits for the others' rows to be written.
GROUP_ROWS = 400

Writes = Sequence[tuple[Table, dict[str, Any]]]


async def insert_atomically(engine: AsyncEngine, writes: Writes) -> None:
    """Insert every ``(table, row)`` of one unit of work, all or nothing; sent at once, or with
    the units that arrive while this process's previous statement is in flight."""
    loop = asyncio.get_running_loop()
    group = _GROUPS.get(engine)
    if group is None or group.loop is not loop:
        group = _GROUPS[engine] = _GroupCommit(loop)
    await group.insert(engine, writes)


class _GroupCommit:
    """One engine's insert-only commits on one event loop: one statement at the server at a
    time (unless it is stuck), and every unit that arrived meanwhile goes in the next one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # the engine is not kept: it is the key this group is weakly held by
        self._waiting: collections.deque[tuple[Writes, asyncio.Future[None]]] = collections.deque()
        self._sender: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def insert(self, engine: AsyncEngine, writes: Writes) -> None:
        done = self.loop.create_future()
        self._waiting.append((writes, done))
        if self._sender is None:
            self._sender = self.loop.create_task(self._send_all(engine))
        await done  # cancelled before it is sent, the unit is left out (nothing written)

    async def _send_all(self, engine: AsyncEngine) -> None:
        try:
            while self._waiting:
                group = self._take_group()
                if group:
                    sending = self.loop.create_task(self._send(engine, group))
                    self._sending.add(sending)
                    sending.add_done_callback(self._sending.discard)
                    await asyncio.wait({sending}, timeout=STUCK_AFTER_SECONDS)
        finally:
            self._sender = None
            for _, done in self._waiting:  # only when this task itself was cancelled
                done.cancel()

    def _take_group(self) -> list[tuple[Writes, asyncio.Future[None]]]:
        group, rows = [], 0
        while self._waiting and (not group or rows + len(self._waiting[0][0]) <= GROUP_ROWS):
            writes, done = self._waiting.popleft()
            if not done.done():  # its request was cancelled while it waited
                group.append((writes, done))
                rows += len(writes)
        return group

    async def _send(self, engine: AsyncEngine, group: list[tuple[Writes, asyncio.Future[None]]]) -> None:
        try:
            await execute_as_one_statement(engine, [write for writes, _ in group for write in writes])
        except Exception as error:  # noqa: BLE001 - whatever failed, each unit gets its own outcome
            if len(group) == 1:
                _settle(group[0][1], error)
                return
            # One unit's bad row fails the whole statement: each unit alone, for its own outcome.
            for writes, done in group:
                if done.done():
                    continue
                try:
                    await execute_as_one_statement(engine, writes)
                except Exception as unit_error:  # noqa: BLE001 - handed to its own request
                    _settle(done, unit_error)
                else:
                    _settle(done, None)
        else:
            for _, done in group:
                _settle(done, None)
        finally:
            # Only when the sending itself was cancelled (the loop closing), possibly between two
            # units sent alone: no request may wait forever for an outcome nobody will set.
            for _, done in group:
                done.cancel()


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


_GROUPS: weakref.WeakKeyDictionary[AsyncEngine, _GroupCommit] = weakref.WeakKeyDictionary()


async def fetch_first_column(engine: AsyncEngine, sql: str, *arguments: Any) -> list[Any]:
    """The first column of a statement's rows, run alone on a pooled connection outside any
    transaction (e.g. ``nextval``, which no transaction undoes anyway)."""
    return [row[0] for row in await fetch_alone(engine, sql, *arguments)]


async def fetch_alone(engine: AsyncEngine, sql: str, *arguments: Any) -> list[asyncpg.Record]:
    """A statement's rows, run alone (autocommitted) on a pooled connection outside any
    transaction: no SQLAlchemy execution around a statement compiled once (:func:`compiled_text`)."""
    return await _on_pooled_connection(engine, sql, arguments, lambda connection: connection.fetch(sql, *arguments))


async def _on_pooled_connection(
    engine: AsyncEngine,
    sql: str,
    arguments: Sequence[Any],
    run: Callable[[asyncpg.Connection], Awaitable[Any]],
) -> Any:
    pooled = await engine.raw_connection()
    healthy = False
    try:
        result = await run(pooled.driver_connection)
        healthy = True
        return result
    except asyncpg.IntegrityConstraintViolationError as error:
        healthy = True
        raise exc.IntegrityError(sql, arguments, error) from error
    except asyncpg.PostgresError as error:
        healthy = True  # the server answered: the connection is fine
        raise exc.DBAPIError(sql, arguments, error) from error
    except Exception as error:  # the connection broke (server gone, protocol state lost)
        raise exc.DBAPIError(sql, arguments, error) from error
    finally:
        # Back to the pool, or discarded when its state is unknown (a lost server, a statement
        # cancelled in flight). Closing may await: hence the greenlet SQLAlchemy's adaptation needs.
        await greenlet_spawn(_release, pooled, healthy)


def _release(pooled: PoolProxiedConnection, healthy: bool) -> None:
    if not healthy or pooled.driver_connection.is_closed():  # e.g. after "terminating connection"
        pooled.invalidate()
    pooled.close()
