"""The unit of work: one transaction that rolls back unless committed explicitly.

On commit it turns every event recorded by the aggregates it tracks (and every event emitted
directly) into a CloudEvents envelope and inserts them into the service's outbox table in the
same transaction as the state change. The relay publishes them later; nothing here talks to
RabbitMQ.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.context import child_traceparent, current_context
from shared.db import PlatformTables
from shared.domain import Aggregate
from shared.events.base import CloudEvent, Event, make_envelope


class UnitOfWork:
    def __init__(self, engine: AsyncEngine, tables: PlatformTables, source: str) -> None:
        self._engine = engine
        self.tables = tables
        self.source = source
        self._connection: AsyncConnection | None = None
        self._aggregates: list[Aggregate] = []
        self._envelopes: list[CloudEvent] = []
        self.committed = False
        self._traceparent: str | None = None
        # The envelope a consumer is handling, if any (set by the consumer runner).
        self.message: CloudEvent | None = None

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("the unit of work is not open: use `async with uow:`")
        return self._connection

    async def __aenter__(self) -> Self:
        self._connection = await self._engine.connect()
        await self._connection.begin()
        self._aggregates, self._envelopes, self.committed = [], [], False
        return self

    async def __aexit__(self, *exc: object) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if not self.committed:
                await connection.rollback()
        finally:
            await connection.close()

    # -- events ---------------------------------------------------------------------------

    def track(self, aggregate: Aggregate) -> None:
        """Publish the events this aggregate records, at commit."""
        if not any(a is aggregate for a in self._aggregates):
            self._aggregates.append(aggregate)

    def emit(self, event: Event, *, subject: str | None, sequence: int | None = None) -> CloudEvent:
        """Publish an event that no tracked aggregate recorded."""
        ctx = current_context.get()
        if ctx.traceparent is None and self._traceparent is None:
            # Outside a request or event (a script, a command): this unit of work starts a trace.
            self._traceparent = child_traceparent(None)
        envelope = make_envelope(
            event,
            source=self.source,
            subject=subject,
            sequence=sequence,
            correlation_id=ctx.correlation_id,
            causation_id=ctx.causation_id,
            traceparent=ctx.traceparent or self._traceparent,
        )
        self._envelopes.append(envelope)
        return envelope

    def collect_events(self) -> None:
        """Envelope the tracked aggregates' events now, under the current context.

        The consumer runner calls this after each handler of a batch, so each event's
        causation id is the message that caused it.
        """
        for aggregate in self._aggregates:
            for event, sequence in aggregate.take_events():
                self.emit(event, subject=aggregate.aggregate_id, sequence=sequence)

    @property
    def pending_envelopes(self) -> list[CloudEvent]:
        return list(self._envelopes)

    # -- transaction ----------------------------------------------------------------------

    async def execute(self, statement: Any, params: Any = None):
        return await self.connection.execute(statement, params)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: on error, its writes and the events emitted inside it are undone."""
        self.collect_events()
        mark = len(self._envelopes)
        nested = await self.connection.begin_nested()
        try:
            yield
            self.collect_events()
        except BaseException:
            await nested.rollback()
            del self._envelopes[mark:]
            for aggregate in self._aggregates:
                aggregate.take_events()
            raise
        await nested.commit()

    async def flush_outbox(self) -> None:
        self.collect_events()
        if self._envelopes:
            await self.connection.execute(
                insert(self.tables.outbox),
                [{"event_id": e.id, "event_type": e.type, "envelope": e.to_json()} for e in self._envelopes],
            )
            self._envelopes = []

    async def commit(self) -> None:
        await self.flush_outbox()
        await self.connection.commit()
        self.committed = True

    async def rollback(self) -> None:
        await self.connection.rollback()
        self._envelopes = []
        for aggregate in self._aggregates:
            aggregate.take_events()
