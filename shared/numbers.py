"""Human document numbers (``HT-2026-000123``) from a PostgreSQL sequence.

Numbers are unique and safe under concurrency (a sequence never hands out a value twice) and
gap-tolerant, as DESIGN.md allows: so each process takes them in blocks, one round trip per
block instead of one per document. A rolled-back document or a restarted process leaves gaps.

A block is fetched on a pooled connection of its own, outside the request's unit of work (a
sequence is not transactional anyway), and the next one is fetched ahead, while the process
still holds numbers: a request waits for a block only when a burst used them all. Fetched
inside the unit of work, the block turned that request's single-statement insert into BEGIN,
SELECT, INSERT, COMMIT, and one request in twenty took four round trips (benchmark 3's p99).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from datetime import datetime

from sqlalchemy import Sequence
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.single_statement import fetch_first_column
from shared.uow import UnitOfWork

BLOCK_SIZE = 20
REFILL_BELOW = BLOCK_SIZE // 2  # numbers left when the next block is fetched


class _HeldNumbers:
    """One sequence's numbers this process holds but has not used, and the block on its way."""

    def __init__(self, engine: AsyncEngine, sequence: Sequence) -> None:
        # No reference to the engine: it is this entry's weak key.
        self.name = engine.dialect.identifier_preparer.format_sequence(sequence)
        self.values: deque[int] = deque()
        self.refill: asyncio.Task | None = None

    def _refill_started(self, engine: AsyncEngine) -> asyncio.Task:
        loop = asyncio.get_running_loop()
        if self.refill is None or self.refill.done() or self.refill.get_loop() is not loop:
            self.refill = loop.create_task(self._fetch_block(engine), name=f"numbers {self.name}")
            # Nobody may await an early fetch: a failed one is retried by the next take.
            self.refill.add_done_callback(_retrieve_exception)
        return self.refill

    async def _fetch_block(self, engine: AsyncEngine) -> None:
        sql = "SELECT nextval($1::regclass) FROM generate_series(1, $2)"
        self.values.extend(await fetch_first_column(engine, sql, self.name, BLOCK_SIZE))

    async def take(self, engine: AsyncEngine) -> int:
        while not self.values:
            # Shielded: a request cancelled while waiting leaves the block to the others.
            await asyncio.shield(self._refill_started(engine))
        value = self.values.popleft()
        if len(self.values) < REFILL_BELOW:
            self._refill_started(engine)
        return value


def _retrieve_exception(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


# Per engine (a database), per sequence.
_held: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def next_document_number(uow: UnitOfWork, sequence: Sequence, prefix: str, now: datetime) -> str:
    by_sequence: dict[str, _HeldNumbers] = _held.setdefault(uow.engine.sync_engine, {})
    held = by_sequence.get(sequence.name)
    if held is None:
        held = by_sequence[sequence.name] = _HeldNumbers(uow.engine, sequence)
    return f"{prefix}-{now.year}-{await held.take(uow.engine):06d}"
