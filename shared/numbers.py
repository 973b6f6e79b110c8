"""Human document numbers (``HT-2026-000123``) from a PostgreSQL sequence.

Numbers are unique and safe under concurrency (a sequence never hands out a value twice) and
gap-tolerant, as DESIGN.md allows: so each process takes them in blocks, one round trip per
block instead of one per document. A rolled-back document or a restarted process leaves gaps.
"""

from __future__ import annotations

import weakref
from collections import deque
from datetime import datetime

from sqlalchemy import Sequence, func, select

from shared.uow import UnitOfWork

BLOCK_SIZE = 20

# Per engine (a database), per sequence: the numbers this process holds but has not used.
_reserved: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def next_document_number(uow: UnitOfWork, sequence: Sequence, prefix: str, now: datetime) -> str:
    held: dict[str, deque[int]] = _reserved.setdefault(uow.engine.sync_engine, {})
    values = held.setdefault(sequence.name, deque())
    if not values:
        block = select(sequence.next_value()).select_from(func.generate_series(1, BLOCK_SIZE))
        values.extend((await uow.execute(block)).scalars())
    return f"{prefix}-{now.year}-{values.popleft():06d}"
