"""The webhooks schema: the event history (every event seen on the bus)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Table, Text, select
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.db import service_metadata, utc_timestamp
from shared.events import CloudEvent
from shared.pagination import PageParams, fetch_page
from shared.uow import UnitOfWork

metadata, platform_tables = service_metadata("webhooks")

event_history = Table(
    "event_history",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("type", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("subject", Text),
    utc_timestamp("time", nullable=False),
    Column("envelope", JSONB, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Index("ix_event_history_created_at_id", "created_at", "id"),
    Index("ix_event_history_type_created_at_id", "type", "created_at", "id"),
)


async def record_event(uow: UnitOfWork, envelope: CloudEvent) -> None:
    await uow.execute(
        pg_insert(event_history)
        .values(
            id=envelope.id,
            type=envelope.type,
            source=envelope.source,
            subject=envelope.subject,
            time=envelope.time,
            envelope=envelope.model_dump(mode="json", exclude_none=True),
            created_at=envelope.time,
        )
        .on_conflict_do_nothing()
    )


async def list_events(uow: UnitOfWork, page: PageParams, *, event_type: str | None = None) -> tuple[list, str | None]:
    query = select(event_history)
    if event_type is not None:
        query = query.where(event_history.c.type == event_type)
    return await fetch_page(uow.connection, query, (event_history.c.created_at, event_history.c.id), page)
