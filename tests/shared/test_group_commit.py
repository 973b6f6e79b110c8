"""Group commit (real PostgreSQL): insert-only units of work that reach their commit while an
earlier one is at the server are sent together as one statement, and each unit still gets its
own outcome: a refused row fails its own unit only, a unit cancelled while it waits writes nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import exc

from services.orders.db import platform_tables
from shared import single_statement
from tests.conftest import TEST_DB_NAME, admin_dsn

NOW = datetime(2026, 11, 25, tzinfo=UTC)
KIND = "group-commit-test"


async def insert_timer(uow_factory, key: str) -> None:
    """One insert-only unit of work: a timer row, committed (one statement, alone or grouped)."""
    async with uow_factory() as uow:
        uow.insert_later(platform_tables.timers, {"kind": KIND, "key": key, "due_at": NOW, "payload": {"key": key}})
        await uow.commit()


async def written(db: asyncpg.Connection) -> dict[str, int]:
    """Each key written, with the id of the transaction that wrote it."""
    rows = await db.fetch("SELECT key, xmin::text::bigint AS xid FROM orders.timers WHERE kind = $1", KIND)
    return {row["key"]: row["xid"] for row in rows}


async def test_units_committing_at_once_are_written_by_one_statement(uow_factory, clean_db: asyncpg.Connection) -> None:
    keys = [f"k{i}" for i in range(40)]
    await asyncio.gather(*(insert_timer(uow_factory, key) for key in keys))
    rows = await written(clean_db)
    assert sorted(rows) == sorted(keys)
    # Sent one by one they would be 40 transactions; the first goes alone at most.
    assert len(set(rows.values())) <= 2, sorted(set(rows.values()))


async def test_a_unit_whose_row_is_refused_fails_alone(uow_factory, clean_db: asyncpg.Connection) -> None:
    await insert_timer(uow_factory, "taken")
    keys = [f"k{i}" for i in range(9)]
    outcomes = await asyncio.gather(
        insert_timer(uow_factory, keys[0]),  # in flight while the others wait and are grouped
        *(insert_timer(uow_factory, key) for key in [*keys[1:5], "taken", *keys[5:]]),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], exc.IntegrityError), outcomes
    assert sorted(await written(clean_db)) == sorted([*keys, "taken"])


@contextlib.asynccontextmanager
async def timers_locked() -> AsyncIterator[None]:
    """The timers table locked by another transaction until the block ends: a unit inserting a
    timer meanwhile stays at the server, waiting."""
    blocker = await asyncpg.connect(admin_dsn(TEST_DB_NAME))
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE orders.timers IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await blocker.close()


async def insert_key(uow_factory, key: str) -> None:
    """An insert-only unit of work on another table than the timers."""
    async with uow_factory() as uow:
        row = {"principal": KIND, "key": key, "method_path": "POST /test", "request_hash": "0" * 64}
        uow.insert_later(platform_tables.idempotency_keys, row)
        await uow.commit()


async def test_a_unit_stuck_on_a_lock_holds_up_the_others_only_briefly(uow_factory, clean_db: asyncpg.Connection):
    async with timers_locked():
        stuck = asyncio.create_task(insert_timer(uow_factory, "stuck"))
        await asyncio.sleep(0.01)
        # Units of another table, behind it: sent once it has been at the server a while.
        await asyncio.wait_for(asyncio.gather(*(insert_key(uow_factory, f"k{i}") for i in range(5))), 5)
        assert not stuck.done()
    await asyncio.wait_for(stuck, 10)
    assert sorted(await written(clean_db)) == ["stuck"]
    assert await clean_db.fetchval("SELECT count(*) FROM orders.idempotency_keys WHERE principal = $1", KIND) == 5


async def test_a_unit_cancelled_while_it_waits_writes_nothing(
    uow_factory, clean_db: asyncpg.Connection, monkeypatch
) -> None:
    monkeypatch.setattr(single_statement, "STUCK_AFTER_SECONDS", 10.0)  # the queue holds while we look
    async with timers_locked():
        first = asyncio.create_task(insert_timer(uow_factory, "first"))
        await asyncio.sleep(0.01)  # at the server, waiting for the lock
        waiting = asyncio.create_task(insert_timer(uow_factory, "cancelled"))
        behind = asyncio.create_task(insert_timer(uow_factory, "behind"))
        await asyncio.sleep(0.01)  # both queued behind the statement in flight
        waiting.cancel()
    # The lock has gone: the first unit commits, then the group behind it.
    await asyncio.wait_for(asyncio.gather(first, behind), 10)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert sorted(await written(clean_db)) == ["behind", "first"]
