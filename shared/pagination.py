"""Cursor (keyset) pagination for list endpoints.

A list is sorted by a unique key tuple, e.g. ``(created_at, id)``; a page is the rows after
the cursor's tuple, so pages never skip or repeat rows when rows are inserted meanwhile, and
page N costs the same as page 1 (an index range scan, no OFFSET). The cursor is the last
row's key tuple, typed, as URL-safe base64 with a checksum: a cursor that was cut, edited or
made up is a 400 problem. It is not a secret and grants nothing: every query keeps its own
authorization filters, the cursor only says where to resume.

A router::

    @router.get("/v1/orders", response_model=Page[OrderRead])
    async def list_orders(request: Request, response: Response,
                          page: PageParams = Depends(page_params), principal=Depends(current_principal)):
        stmt = select(orders).where(orders.c.owner == principal.sub)           # filters as usual
        async with engine.connect() as conn:
            rows, next_cursor = await fetch_page(conn, stmt, [orders.c.created_at, orders.c.id], page,
                                                 descending=True)
        return paginated(request, response, [OrderRead.model_validate(r) for r in rows], next_cursor)

``fetch_page`` adds ``WHERE (created_at, id) < (:a, :b)`` (``>`` ascending), ``ORDER BY`` the
key and ``LIMIT limit + 1``: the extra row tells whether there is a next page. The key columns
must be selected by ``stmt`` and be NOT NULL (a row comparison with NULL matches nothing), and
the last one must be unique. ``paginated`` sets ``Link: <...&cursor=...>; rel="next"``, keeping
the request's other query parameters (filters, ``limit``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, literal, tuple_
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 512
# Not a secret (see the module docstring): it makes the checksum specific to Salesline cursors.
_CURSOR_KEY = b"salesline-cursor-v1"
_MAC_SIZE = 8

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page")


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page"),
    ] = None,
) -> PageParams:
    """Dependency: the ``limit`` and ``cursor`` query parameters."""
    return PageParams(limit=limit, cursor=cursor or None)


# -- cursor encoding -------------------------------------------------------------------------


def _tag(value: Any) -> list[Any]:
    # bool before int (a bool is an int), datetime before date (a datetime is a date).
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", value.hex]
    if isinstance(value, Decimal):
        return ["n", str(value)]
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")


def _untag(item: Any) -> Any:
    tag, raw = item
    if tag == "b" and isinstance(raw, bool):
        return raw
    if tag == "i" and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if tag == "s" and isinstance(raw, str):
        return raw
    if tag == "t" and isinstance(raw, str):
        return datetime.fromisoformat(raw)
    if tag == "d" and isinstance(raw, str):
        return date.fromisoformat(raw)
    if tag == "u" and isinstance(raw, str):
        return uuid.UUID(hex=raw)
    if tag == "n" and isinstance(raw, str):
        number = Decimal(raw)
        if not number.is_finite():
            raise ValueError("not finite")
        return number
    raise ValueError("bad cursor item")


def _mac(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=_CURSOR_KEY, digest_size=_MAC_SIZE).digest()


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque, URL-safe cursor for a sort key tuple."""
    payload = json.dumps([_tag(v) for v in values], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(_mac(payload) + payload).rstrip(b"=").decode("ascii")


def _invalid_cursor() -> Problem:
    return Problem(
        400,
        "Invalid cursor",
        "The cursor is not one this service issued; start again without `cursor`.",
        slug="invalid-cursor",
    )


def decode_cursor(cursor: str, size: int | None = None) -> tuple[Any, ...]:
    """The key tuple of a cursor made by :func:`encode_cursor`; a 400 problem if tampered with."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        mac, payload = raw[:_MAC_SIZE], raw[_MAC_SIZE:]
        if not hmac.compare_digest(mac, _mac(payload)):
            raise ValueError("checksum")
        items = json.loads(payload)
        if not isinstance(items, list) or not items or (size is not None and len(items) != size):
            raise ValueError("shape")
        return tuple(_untag(item) for item in items)
    except (ValueError, TypeError, binascii.Error, InvalidOperation, UnicodeDecodeError):
        raise _invalid_cursor() from None


# -- queries ---------------------------------------------------------------------------------


def _python_type(column: ColumnElement[Any]) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def keyset_condition(
    columns: Sequence[ColumnElement[Any]], values: Sequence[Any], *, descending: bool = False
) -> ColumnElement[bool]:
    """``(c1, c2) > (:v1, :v2)`` (``<`` when descending), each value bound with its column's type."""
    if len(columns) != len(values):
        raise _invalid_cursor()
    for column, value in zip(columns, values, strict=True):
        expected = _python_type(column)
        if expected is not None and not isinstance(value, expected):
            raise _invalid_cursor()
    if len(columns) == 1:
        column, value = columns[0], literal(values[0], columns[0].type)
        return column < value if descending else column > value
    left = tuple_(*columns)
    right = tuple_(*(literal(v, c.type) for c, v in zip(columns, values, strict=True)))
    return left < right if descending else left > right


def keyset_select(
    stmt: Select[Any], columns: Sequence[ColumnElement[Any]], page: PageParams, *, descending: bool = False
) -> Select[Any]:
    """``stmt`` restricted to the page after ``page.cursor``, sorted, limited to ``limit + 1``."""
    if page.cursor is not None:
        stmt = stmt.where(keyset_condition(columns, decode_cursor(page.cursor, len(columns)), descending=descending))
    order = [c.desc() for c in columns] if descending else list(columns)
    return stmt.order_by(*order).limit(page.limit + 1)


async def fetch_page(
    connection: Any,
    stmt: Select[Any],
    columns: Sequence[ColumnElement[Any]],
    page: PageParams,
    *,
    descending: bool = False,
) -> tuple[list[Any], str | None]:
    """Run the keyset query on ``connection`` (an AsyncConnection or a unit of work).

    Returns at most ``page.limit`` rows and the cursor of the next page (None on the last).
    """
    result = await connection.execute(keyset_select(stmt, columns, page, descending=descending))
    rows = list(result.all())
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    mapping = rows[-1]._mapping
    return rows, encode_cursor([mapping[c] for c in columns])


def next_page_url(request: Request, next_cursor: str) -> str:
    """The request's own path and query with ``cursor`` replaced (a relative reference)."""
    url = request.url.include_query_params(cursor=next_cursor)
    return f"{url.path}?{url.query}"


def set_next_link(request: Request, response: Response, next_cursor: str | None) -> None:
    if next_cursor:
        response.headers["Link"] = f'<{next_page_url(request, next_cursor)}>; rel="next"'


def paginated(request: Request, response: Response, items: Sequence[T], next_cursor: str | None) -> Page[T]:
    """The ``Page`` body, with the ``Link: rel="next"`` header set on ``response``."""
    set_next_link(request, response, next_cursor)
    return Page[Any](items=list(items), next_cursor=next_cursor)
