"""A small base for aggregate repositories over SQLAlchemy Core.

A subclass names its table and maps aggregate <-> row; the base gives every service the same
owner-scoped ``get``, the optimistic-concurrency ``save`` (version check, 412 on conflict),
``add`` and a keyset-paginated ``list``. Events recorded by the aggregate are handed to the
unit of work, which writes them to the outbox at commit.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, Table, Update, bindparam, select, update

from shared.auth import Principal
from shared.domain import Aggregate, NotFound, PreconditionFailed
from shared.pagination import PageParams, fetch_page
from shared.scope import owner_filter
from shared.uow import UnitOfWork

A = TypeVar("A", bound=Aggregate)


def json_codec(type_: Any) -> TypeAdapter:
    """Round-trips dataclasses/pydantic values (with Decimals) through JSONB columns."""
    return TypeAdapter(type_)


@functools.cache
def _versioned_update(table: Table) -> Update:
    """``UPDATE … SET <the row's columns> WHERE id = :_where_id AND version = :_where_version``."""
    return update(table).where(table.c.id == bindparam("_where_id"), table.c.version == bindparam("_where_version"))


class Repository(Generic[A]):
    table: ClassVar[Table]
    noun: ClassVar[str] = "object"

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._loaded_versions: dict[str, int] = {}

    def to_row(self, aggregate: A) -> dict[str, Any]:
        raise NotImplementedError

    def from_row(self, row: Any) -> A:
        raise NotImplementedError

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        from sqlalchemy import true

        return true() if principal is None else owner_filter(principal, self.table.c.owner_id)

    async def add(self, aggregate: A) -> None:
        self.uow.track(aggregate)
        self.uow.collect_events()  # the row stores the version after the recorded events
        self.uow.insert_later(self.table, self.to_row(aggregate))

    async def get(self, aggregate_id: uuid.UUID, principal: Principal | None, *, for_update: bool = False) -> A | None:
        """``principal=None`` is the system itself (consumers, timers): no owner scoping."""
        query = select(self.table).where(self.table.c.id == aggregate_id, self.visible_to(principal))
        if for_update:
            query = query.with_for_update()
        row = (await self.uow.execute(query)).first()
        if row is None:
            return None
        aggregate = self.from_row(row)
        self._loaded_versions[aggregate.aggregate_id] = aggregate.version
        return aggregate

    async def get_visible(self, aggregate_id: uuid.UUID, principal: Principal | None) -> A:
        aggregate = await self.get(aggregate_id, principal)
        if aggregate is None:
            raise NotFound(f"no {self.noun} {aggregate_id}")
        return aggregate

    async def get_for_change(
        self, aggregate_id: uuid.UUID, principal: Principal | None, *, if_match: int | None = None
    ) -> A:
        """Load and lock for a state change; ``if_match`` is the version the client last read."""
        aggregate = await self.get(aggregate_id, principal, for_update=True)
        if aggregate is None:
            raise NotFound(f"no {self.noun} {aggregate_id}")
        if if_match is not None and if_match != aggregate.version:
            raise PreconditionFailed(f"the {self.noun} has changed since you read it")
        return aggregate

    async def save(self, aggregate: A) -> None:
        """Write the changed aggregate; a concurrent change since it was loaded is a 412."""
        loaded_version = self._loaded_versions[aggregate.aggregate_id]
        self.uow.track(aggregate)
        self.uow.collect_events()
        result = await self.uow.execute(
            _versioned_update(self.table),
            {**self.to_row(aggregate), "_where_id": aggregate.aggregate_id, "_where_version": loaded_version},
        )
        self._loaded_versions[aggregate.aggregate_id] = aggregate.version
        if result.rowcount != 1:
            raise PreconditionFailed(f"the {self.noun} was changed by someone else; reload it and try again")

    async def list(
        self,
        principal: Principal | None,
        page: PageParams,
        *,
        filters: dict[str, Any] | None = None,
    ) -> tuple[list[A], str | None]:
        """Newest first would reorder pages under inserts; the stable order is (created_at, id)."""
        query = select(self.table).where(self.visible_to(principal))
        for column, value in (filters or {}).items():
            if value is not None:
                query = query.where(self.table.c[column] == value)
        rows, next_cursor = await fetch_page(self.uow, query, (self.table.c.created_at, self.table.c.id), page)
        return [self.from_row(row) for row in rows], next_cursor
