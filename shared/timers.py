"""Durable timers: deadlines as rows with a due time, so they survive restarts.

Schedule one inside a unit of work (it commits with the state change that needs it)::

    await schedule_timer(uow, "survey.reminder", key=str(survey.id), due_at=..., payload={...})

The poller claims due rows with ``FOR UPDATE SKIP LOCKED`` and runs each one's handler in
the same transaction that marks it fired, so a timer has its effect once across replicas
and restarts: a worker killed mid-way rolls back and the timer fires after restart. A
handler that raises is rescheduled with back-off and its error recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import DateTime, Table, Text, bindparam, cast, delete, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared import telemetry
from shared.config import ServiceSettings
from shared.context import EventContext, current_context
from shared.uow import UnitOfWork

log = logging.getLogger("salesline.timers")

FIRED = Counter("salesline_timers_fired_total", "Timers fired", ["service", "kind"])
FAILED = Counter("salesline_timers_failed_total", "Timer handler failures (retried with back-off)", ["service", "kind"])

# Where a timer keeps the trace context it was scheduled in (removed before its handler sees the payload).
TRACE_KEY = "_traceparent"

TimerHandler = Callable[[dict[str, Any], UnitOfWork], Awaitable[None]]


async def schedule_timer(
    uow: UnitOfWork, kind: str, *, key: str, due_at: datetime, payload: dict[str, Any] | None = None
) -> None:
    """Create or move the ``(kind, key)`` timer. Moving a fired timer re-arms it.

    The current trace context is kept with it: the firing continues the trace that scheduled it."""
    await schedule_timers(uow, kind, [(key, due_at, payload or {})])


async def schedule_timers(uow: UnitOfWork, kind: str, timers: list[tuple[str, datetime, dict[str, Any]]]) -> None:
    """:func:`schedule_timer` for many ``(key, due_at, payload)`` at once: one statement (arrays)."""
    if not timers:
        return
    trace = {TRACE_KEY: traceparent} if (traceparent := current_context.get().traceparent) else {}
    await uow.execute(
        _upsert_timers(uow.tables.timers),
        {
            "kind": kind,
            "keys": [key for key, _, _ in timers],
            "due_ats": [due_at for _, due_at, _ in timers],
            "payloads": [json.dumps({**payload, **trace}) for _, _, payload in timers],
        },
    )


@functools.cache
def _upsert_timers(table: Table) -> Any:
    given = (
        func.unnest(
            bindparam("keys", type_=ARRAY(Text)),
            bindparam("due_ats", type_=ARRAY(DateTime(timezone=True))),
            bindparam("payloads", type_=ARRAY(Text)),
        )
        .table_valued("key", "due_at", "payload")
        .render_derived()
    )
    rows = select(bindparam("kind", type_=Text), given.c.key, given.c.due_at, cast(given.c.payload, JSONB))
    stmt = pg_insert(table).from_select(["kind", "key", "due_at", "payload"], rows)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.kind, table.c.key],
        set_={"due_at": stmt.excluded.due_at, "payload": stmt.excluded.payload, "fired_at": None, "attempts": 0},
    )


async def cancel_timer(uow: UnitOfWork, kind: str, *, key: str) -> None:
    timers = uow.tables.timers
    await uow.execute(delete(timers).where(timers.c.kind == kind, timers.c.key == key, timers.c.fired_at.is_(None)))


class TimerPoller:
    def __init__(
        self,
        settings: ServiceSettings,
        handlers: Mapping[str, TimerHandler],
        uow_factory: Callable[[], UnitOfWork],
    ) -> None:
        self.settings = settings
        self.handlers = dict(handlers)
        self.uow_factory = uow_factory
        self.tracer = telemetry.tracer(settings.service_name, worker=True)  # None unless OTLP export is on
        schema = settings.schema
        self._claim_sql = text(
            f"""SELECT id, kind, key, payload FROM "{schema}".timers
                WHERE fired_at IS NULL AND due_at <= now() AND kind = ANY(:kinds)
                ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED"""
        )
        self._fired_sql = text(f'UPDATE "{schema}".timers SET fired_at = now() WHERE id = :id')
        self._backoff_sql = text(
            f"""UPDATE "{schema}".timers SET attempts = attempts + 1, last_error = :error,
                due_at = now() + make_interval(secs => least(3600, power(2, least(attempts, 12))))
                WHERE id = :id"""
        )

    async def run(self, stopping: asyncio.Event) -> None:
        if not self.handlers:
            return
        while not stopping.is_set():
            try:
                fired = await self.fire_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer poll failed")
                fired = 0
            # Poll again at once after firing anything: a handler may have scheduled a successor
            # due now (a bulk import's next chunk), which must not wait a poll interval.
            if not fired:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=self.settings.timer_poll_seconds)

    async def fire_due(self) -> int:
        """Fire one batch of due timers; returns how many were claimed."""
        failed: list[tuple[int, str]] = []
        uow = self.uow_factory()
        async with uow:
            rows = (
                await uow.execute(
                    self._claim_sql, {"kinds": list(self.handlers), "limit": self.settings.timer_batch_size}
                )
            ).all()
            for row in rows:
                # A firing is a span in the trace that scheduled it (or starts one), for its logs
                # and the events it records.
                payload = dict(row.payload)
                span, traceparent = telemetry.child_span(self.tracer, f"timer {row.kind}", payload.pop(TRACE_KEY, None))
                token = current_context.set(EventContext(traceparent=traceparent))
                try:
                    async with uow.savepoint():
                        await self.handlers[row.kind](dict(payload, _key=row.key), uow)
                        await uow.execute(self._fired_sql, {"id": row.id})
                    FIRED.labels(self.settings.service_name, row.kind).inc()
                except Exception as exc:  # noqa: BLE001 - recorded on the row and retried
                    log.warning("timer %s/%s failed: %s", row.kind, row.key, exc)
                    FAILED.labels(self.settings.service_name, row.kind).inc()
                    failed.append((row.id, f"{type(exc).__name__}: {str(exc)[:500]}"))
                    if span is not None:
                        telemetry.fail(span, exc)
                finally:
                    current_context.reset(token)
                    if span is not None:
                        span.end()
            for timer_id, error in failed:
                await uow.execute(self._backoff_sql, {"id": timer_id, "error": error})
            await uow.commit()
        return len(rows)
