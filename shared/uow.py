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

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.context import child_traceparent, current_context
from shared.db import PlatformTables
from shared.domain import Aggregate
from shared.events.base import CloudEvent, Event, make_envelope
from shared.single_statement import combined_insert, compiled_insert, insert_atomically
from shared.wakeup import wake, wake_outbox_relays

# From this many events on, a commit writes its outbox rows with COPY (an import's chunk).
COPY_FROM = 100


class UnitOfWork:
    def __init__(self, engine: AsyncEngine, tables: PlatformTables, source: str) -> None:
        self._engine = engine
        self.tables = tables
        self.source = source
        self._connection: AsyncConnection | None = None
        self._entered = False
        self._aggregates: list[Aggregate] = []
        self._envelopes: list[CloudEvent] = []
        # Inserts whose results nobody reads: sent before the next statement, or at commit.
        self._pending_inserts: list[tuple[Table, dict[str, Any]]] = []
        self._statement_sent = False
        self.committed = False
        self._traceparent: str | None = None
        self._outbox_written = False
        self._wake_after_commit: set[str] = set()
        # The envelope a consumer is handling, if any (set by the consumer runner).
        self.message: CloudEvent | None = None

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def connect(self) -> AsyncConnection:
        """The open transaction's connection, for statements built by the caller (pending inserts
        are sent first, so the caller's statement sees them)."""
        await self.flush()
        self._statement_sent = True
        return await self._connected()

    async def _connected(self) -> AsyncConnection:
        # Checked out at the first statement, not on entry: a request that is still computing
        # (validating, rendering) does not hold a pooled connection others are waiting for.
        if self._connection is None:
            if not self._entered:
                raise RuntimeError("the unit of work is not open: use `async with uow:`")
            self._connection = await self._engine.connect()
            await self._connection.begin()  # sends nothing yet: BEGIN goes with the first statement
        return self._connection

    async def __aenter__(self) -> Self:
        self._entered = True
        self._aggregates, self._envelopes, self._pending_inserts = [], [], []
        self._statement_sent = self.committed = self._outbox_written = False
        self._wake_after_commit = set()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._entered = False
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
        return await (await self.connect()).execute(statement, params)

    async def scalar(self, statement: Any, params: Any = None) -> Any:
        return await (await self.connect()).scalar(statement, params)

    def insert_later(self, table: Table, row: dict[str, Any]) -> None:
        """Insert ``row`` before the next statement, or at commit.

        A unit of work that only inserts (a create: the row and its events) then commits in one
        statement without BEGIN and COMMIT: one round trip instead of four (``shared.single_statement``).
        """
        self._pending_inserts.append((table, row))

    async def flush(self) -> None:
        """Send the pending inserts now, in order, as one statement."""
        await self._insert_in_transaction([])

    async def _insert_in_transaction(self, more: list[tuple[Table, dict[str, Any]]]) -> None:
        """The pending inserts and ``more``, in order, as one statement in the transaction."""
        writes, self._pending_inserts = self._pending_inserts + more, []
        if writes:
            self._statement_sent = True
            connection = await self._connected()
            await connection.exec_driver_sql(*combined_insert(connection.dialect, writes))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: on error, its writes and the events emitted inside it are undone."""
        self.collect_events()
        await self.flush()
        mark = len(self._envelopes)
        nested = await (await self.connect()).begin_nested()
        try:
            yield
            self.collect_events()
            await self.flush()
        except BaseException:
            await nested.rollback()
            del self._envelopes[mark:]
            for aggregate in self._aggregates:
                aggregate.take_events()
            raise
        await nested.commit()

    def _outbox_rows(self) -> list[dict[str, Any]]:
        rows = [{"event_id": e.id, "event_type": e.type, "envelope": e.to_json()} for e in self._envelopes]
        self._envelopes = []
        self._outbox_written |= bool(rows)
        return rows

    async def flush_outbox(self) -> None:
        """Send the pending inserts and the events recorded so far (one statement, or COPY for
        an import's hundreds of events)."""
        self.collect_events()
        rows = self._outbox_rows()
        if len(rows) >= COPY_FROM:
            await self.flush()
            await self.copy_rows(self.tables.outbox, rows)
        else:
            await self._insert_in_transaction([(self.tables.outbox, row) for row in rows])

    async def copy_rows(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert many ``rows`` (the same keys in each; Python values of the columns' types) with
        COPY in this transaction: for hundreds of rows several times faster than an INSERT."""
        if not rows:
            return
        connection = await self.connect()
        raw = await connection.get_raw_connection()
        if not raw.driver_connection.is_in_transaction():
            # SQLAlchemy sends BEGIN with its first statement; COPY on the driver must not run before it.
            await connection.execute(text("SELECT 1"))
        columns = tuple(rows[0])
        # Each value converted by its column's type exactly as for an INSERT (JSON serialised, …).
        _, parameters = compiled_insert(connection.dialect, table, columns)
        convert = dict(parameters)
        records = [
            tuple(row[c] if convert[c] is None else convert[c](row[c]) for c in columns)  # type: ignore[misc]
            for row in rows
        ]
        await raw.driver_connection.copy_records_to_table(
            table.name, schema_name=table.schema, columns=columns, records=records
        )

    async def commit(self) -> None:
        self.collect_events()
        if not self._statement_sent:
            # Nothing sent yet, so no transaction is open on the server: one statement is atomic.
            writes = self._pending_inserts + [(self.tables.outbox, row) for row in self._outbox_rows()]
            self._pending_inserts = []
            if writes:
                await insert_atomically(self._engine, writes)
        else:
            await self.flush_outbox()
            await (await self._connected()).commit()
        self.committed = True
        if self._outbox_written:
            wake_outbox_relays(self._engine, self.tables.outbox.schema)
        for channel in self._wake_after_commit:
            wake(self._engine, channel)

    def wake_after_commit(self, channel: str) -> None:
        """Have ``channel``'s listeners woken once this unit of work has committed (a NOTIFY
        inside the transaction would serialise its commit with every other notifier's)."""
        self._wake_after_commit.add(channel)

    async def rollback(self) -> None:
        if self._connection is not None:
            await self._connection.rollback()
        self._envelopes, self._pending_inserts = [], []
        for aggregate in self._aggregates:
            aggregate.take_events()
