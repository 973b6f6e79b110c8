"""Several inserts sent as one statement: ``WITH w0 AS (INSERT …), … INSERT …``.

A unit of work that only inserts (a create: its row and its outbox events) needs no explicit
transaction: one statement is atomic on its own. Sent through SQLAlchemy it would be BEGIN,
one INSERT per row, COMMIT: four round trips, each through SQLAlchemy's async adaptation,
which made up most of the write path's cost beyond the bare endpoint (measured, benchmarks/).
Here each table's INSERT is compiled once by SQLAlchemy (so column types convert exactly as
they do for every other statement) and the combined text is sent on the driver connection.
PostgreSQL runs every data-modifying ``WITH`` part exactly once, whether or not it is read.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Table, exc, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

_PARAMETER = re.compile(r"\$(\d+)")


@functools.cache
def compiled_insert(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]]:
    """The INSERT's text (``$1``… parameters) and, per parameter, its column key and converter."""
    compiled = insert(table).inline().compile(dialect=dialect, column_keys=list(keys))  # inline: no RETURNING
    processors = compiled._bind_processors
    return str(compiled), tuple((name, processors.get(name)) for name in compiled.positiontup or ())


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


async def fetch_first_column(engine: AsyncEngine, sql: str, *arguments: Any) -> list[Any]:
    """The first column of a statement's rows, run alone on a pooled connection outside any
    transaction (e.g. ``nextval``, which no transaction undoes anyway)."""
    rows = await _on_pooled_connection(engine, sql, arguments, lambda connection: connection.fetch(sql, *arguments))
    return [row[0] for row in rows]


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
