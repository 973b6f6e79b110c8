"""Document numbers: unique under concurrency, fetched in blocks outside the caller's unit of
work (so an insert-only commit stays one statement), the next block fetched ahead of need."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import event

from services.orders.db import order_number_seq, platform_tables
from shared.numbers import BLOCK_SIZE, REFILL_BELOW, next_document_number
from tests.conftest import wait_until

NOW = datetime(2026, 11, 25, tzinfo=UTC)


async def number_in_own_uow(uow_factory) -> str:
    async with uow_factory() as uow:
        return await next_document_number(uow, order_number_seq, "SO", NOW)


async def sequence_value(db: asyncpg.Connection) -> int:
    return await db.fetchval("SELECT last_value FROM orders.order_number_seq")


async def test_concurrent_requests_get_unique_numbers_across_blocks(uow_factory) -> None:
    numbers = await asyncio.gather(*(number_in_own_uow(uow_factory) for _ in range(7 * BLOCK_SIZE + 3)))
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"SO-2026-\d{6}", n) for n in numbers)


async def test_a_number_holds_no_connection_and_leaves_the_commit_one_statement(uow_factory) -> None:
    statements: list[str] = []
    engine = uow_factory().engine
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    async with uow_factory() as uow:
        number = await next_document_number(uow, order_number_seq, "SO", NOW)
        assert engine.pool.checkedout() == 0  # no transaction was opened for it
        uow.insert_later(platform_tables.timers, {"kind": "numbers-test", "key": number, "due_at": NOW, "payload": {}})
        await uow.commit()
    # Neither the block nor the insert went through a SQLAlchemy transaction (BEGIN, …, COMMIT):
    # both ran as single statements on the driver connection.
    assert statements == []


async def test_the_next_block_is_fetched_while_numbers_are_left(uow_factory, clean_db: asyncpg.Connection) -> None:
    await number_in_own_uow(uow_factory)
    first_block_end = await sequence_value(clean_db)
    for _ in range(BLOCK_SIZE - REFILL_BELOW):  # down to fewer than REFILL_BELOW held
        await number_in_own_uow(uow_factory)

    async def next_block_fetched() -> bool:
        return await sequence_value(clean_db) == first_block_end + BLOCK_SIZE

    await wait_until(next_block_fetched, timeout=5, what="the next block fetched ahead")
    # The numbers still held come first, then the new block's: no request waited for it.
    taken = [int((await number_in_own_uow(uow_factory))[-6:]) for _ in range(REFILL_BELOW + BLOCK_SIZE // 2)]
    assert taken == sorted(taken)
    assert await sequence_value(clean_db) == first_block_end + BLOCK_SIZE
