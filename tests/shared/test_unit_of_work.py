"""The unit of work's insert-only commit: one statement, atomic, types converted as SQLAlchemy does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import event, exc, func, select

from services.orders.config import get_settings
from services.orders.db import platform_tables
from shared.db import create_engine
from shared.events.catalog import SurveyReminded
from shared.uow import COPY_FROM, UnitOfWork

TIMERS = platform_tables.timers


def timer_row(key: str, **payload: object) -> dict:
    return {"kind": "uow-test", "key": key, "due_at": datetime.now(UTC) + timedelta(hours=1), "payload": payload}


def an_event() -> SurveyReminded:
    return SurveyReminded(survey_id=uuid.uuid4(), trigger="order", customer_id="c-1")


async def test_inserts_and_events_commit_together_with_their_types(uow_factory, clean_db: asyncpg.Connection) -> None:
    uow = uow_factory()
    async with uow:
        uow.insert_later(TIMERS, timer_row("a", note="数据", amount="1.50"))
        uow.insert_later(TIMERS, timer_row("b"))
        uow.emit(an_event(), subject="s-1")
        await uow.commit()

    rows = await clean_db.fetch(
        "SELECT key, payload::text AS payload FROM orders.timers WHERE kind = 'uow-test' ORDER BY key"
    )
    assert [(r["key"], r["payload"]) for r in rows] == [("a", '{"note": "数据", "amount": "1.50"}'), ("b", "{}")]
    assert await clean_db.fetchval("SELECT count(*) FROM orders.outbox WHERE event_type = 'survey.reminded.v1'") == 1


async def test_a_failing_insert_writes_nothing(uow_factory, clean_db: asyncpg.Connection) -> None:
    uow = uow_factory()
    async with uow:
        uow.insert_later(TIMERS, timer_row("dup"))
        await uow.commit()

    uow = uow_factory()
    with pytest.raises(exc.IntegrityError):
        async with uow:
            uow.insert_later(TIMERS, timer_row("fresh"))
            uow.insert_later(TIMERS, timer_row("dup"))  # (kind, key) is unique
            uow.emit(an_event(), subject="s-2")
            await uow.commit()

    assert await clean_db.fetchval("SELECT count(*) FROM orders.timers WHERE kind = 'uow-test'") == 1
    assert await clean_db.fetchval("SELECT count(*) FROM orders.outbox") == 0


async def test_a_statement_after_pending_inserts_sees_them(uow_factory, clean_db: asyncpg.Connection) -> None:
    uow = uow_factory()
    async with uow:
        uow.insert_later(TIMERS, timer_row("seen"))
        count = (
            await uow.execute(select(func.count()).select_from(TIMERS).where(TIMERS.c.kind == "uow-test"))
        ).scalar()
        assert count == 1
        uow.insert_later(TIMERS, timer_row("later"))
        connection = await uow.connect()  # a caller's own statement sees the pending row too
        count = await connection.scalar(select(func.count()).select_from(TIMERS).where(TIMERS.c.kind == "uow-test"))
        assert count == 2
        await uow.commit()

    assert await clean_db.fetchval("SELECT count(*) FROM orders.timers WHERE kind = 'uow-test'") == 2


async def test_the_pool_is_held_only_while_statements_run(clean_db: asyncpg.Connection) -> None:
    """A unit of work takes a pooled connection at its first statement, not on entry, and an
    insert-only commit holds one only for its statement: with a pool of one connection, a
    second unit of work can commit while the first is open and still computing."""
    engine = create_engine(get_settings().model_copy(update={"db_pool_size": 1}), pool_timeout=2)
    try:
        first, second = (UnitOfWork(engine, platform_tables, "/salesline/orders") for _ in range(2))
        async with first:
            first.insert_later(TIMERS, timer_row("first"))
            async with second:
                second.insert_later(TIMERS, timer_row("second"))
                second.emit(an_event(), subject="s-4")
                await second.commit()
            assert engine.pool.checkedout() == 0
            await first.commit()
        assert engine.pool.checkedout() == 0

        reader = UnitOfWork(engine, platform_tables, "/salesline/orders")
        async with reader:
            assert await reader.scalar(select(func.count()).select_from(TIMERS)) >= 2
            assert engine.pool.checkedout() == 1
        assert engine.pool.checkedout() == 0
    finally:
        await engine.dispose()

    keys = await clean_db.fetch("SELECT key FROM orders.timers WHERE kind = 'uow-test' ORDER BY key")
    assert [r["key"] for r in keys] == ["first", "second"]


async def test_a_statement_failing_because_the_server_went_away_does_not_poison_the_pool(
    clean_db: asyncpg.Connection,
) -> None:
    engine = create_engine(get_settings().model_copy(update={"db_pool_size": 1}), pool_timeout=2)
    try:
        uow = UnitOfWork(engine, platform_tables, "/salesline/orders")
        async with uow:
            pid = await uow.scalar(select(func.pg_backend_pid()))
            await uow.commit()
        await clean_db.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(exc.DBAPIError):
            async with uow:
                uow.insert_later(TIMERS, timer_row("lost"))
                await uow.commit()
        async with uow:  # the dead connection was discarded: a fresh one works
            uow.insert_later(TIMERS, timer_row("kept"))
            await uow.commit()
    finally:
        await engine.dispose()

    keys = await clean_db.fetch("SELECT key FROM orders.timers WHERE kind = 'uow-test'")
    assert [r["key"] for r in keys] == ["kept"]


async def test_not_committed_means_not_written(uow_factory, clean_db: asyncpg.Connection) -> None:
    uow = uow_factory()
    async with uow:
        uow.insert_later(TIMERS, timer_row("dropped"))
        uow.emit(an_event(), subject="s-3")

    assert await clean_db.fetchval("SELECT count(*) FROM orders.timers WHERE kind = 'uow-test'") == 0
    assert await clean_db.fetchval("SELECT count(*) FROM orders.outbox") == 0


async def test_many_events_and_copied_rows_commit_or_roll_back_with_the_transaction(
    uow_factory, clean_db: asyncpg.Connection
) -> None:
    """Hundreds of events (an import's chunk) go to the outbox by COPY, and ``copy_rows`` writes
    rows the same way: both inside the transaction, even as its first statement."""
    many = [timer_row(f"copied-{i}", n=str(i)) for i in range(300)]
    uow = uow_factory()
    async with uow:
        await uow.copy_rows(TIMERS, many[:150])  # the transaction's first statement
        for _ in range(COPY_FROM):
            uow.emit(an_event(), subject="s-3")
        await uow.rollback()
    assert await clean_db.fetchval("SELECT count(*) FROM orders.timers WHERE kind = 'uow-test'") == 0

    uow = uow_factory()
    async with uow:
        await uow.copy_rows(TIMERS, many)
        for _ in range(COPY_FROM):
            uow.emit(an_event(), subject="s-3")
        await uow.commit()
    assert await clean_db.fetchval("SELECT count(*) FROM orders.timers WHERE kind = 'uow-test'") == 300
    payload = await clean_db.fetchval("SELECT payload::text FROM orders.timers WHERE key = 'copied-7'")
    assert payload == '{"n": "7"}'
    envelopes = await clean_db.fetch("SELECT event_type, envelope::jsonb ->> 'subject' AS subject FROM orders.outbox")
    assert [(e["event_type"], e["subject"]) for e in envelopes] == [("survey.reminded.v1", "s-3")] * COPY_FROM


async def test_after_a_read_the_inserts_and_events_go_as_one_statement(
    uow_factory, clean_db: asyncpg.Connection
) -> None:
    """Inside an open transaction too, the pending rows and the outbox rows are one INSERT
    round trip (then COMMIT), not one per row and one for the events."""
    uow = uow_factory()
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(uow.engine.sync_engine, "before_cursor_execute", record)
    async with uow:
        assert await uow.scalar(select(func.count()).select_from(TIMERS)) == 0
        uow.insert_later(TIMERS, timer_row("x", note="数据"))
        uow.insert_later(TIMERS, timer_row("y"))
        uow.emit(an_event(), subject="s-5")
        uow.emit(an_event(), subject="s-6")
        await uow.commit()

    inserts = [s for s in statements if "INSERT" in s]
    assert len(inserts) == 1 and "orders.timers" in inserts[0] and "orders.outbox" in inserts[0]
    rows = await clean_db.fetch("SELECT key, payload::text AS payload FROM orders.timers ORDER BY key")
    assert [(r["key"], r["payload"]) for r in rows] == [("x", '{"note": "数据"}'), ("y", "{}")]
    assert await clean_db.fetchval("SELECT count(*) FROM orders.outbox") == 2


@pytest.mark.parametrize("after_a_read", [False, True])
async def test_rows_of_a_table_keep_the_order_they_were_recorded_in(
    uow_factory, clean_db: asyncpg.Connection, after_a_read: bool
) -> None:
    """The parts of one statement run in no guaranteed order: a table's rows (identity ids,
    e.g. a history) must still get their ids in the order they were recorded."""
    uow = uow_factory()
    async with uow:
        if after_a_read:
            await uow.scalar(select(func.count()).select_from(TIMERS))
        emitted = [uow.emit(an_event(), subject=f"s-{i}").id for i in range(5)]
        uow.insert_later(TIMERS, timer_row("z"))
        await uow.commit()

    in_id_order = [r["event_id"] for r in await clean_db.fetch("SELECT event_id FROM orders.outbox ORDER BY id")]
    assert [str(e) for e in in_id_order] == [str(e) for e in emitted]
