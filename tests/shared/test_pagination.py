"""Cursor pagination: opaque tamper-evident cursors, keyset pages, Link header, limits."""

import base64
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from shared.errors import Problem
from shared.pagination import decode_cursor, encode_cursor
from tests.shared.conftest import HttpSchema, bearer

PROBLEM = "application/problem+json"
BASE = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_cursor_round_trips_typed_values() -> None:
    values = (BASE, uuid.UUID(int=7), 42, "ünïcode/+=", Decimal("12.30"), BASE.date(), True)
    cursor = encode_cursor(values)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor) == values


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-2],
        lambda c: c[:5] + ("A" if c[5] != "A" else "B") + c[6:],
        lambda c: c + "A",
        lambda c: "!!not base64!!",
        lambda c: "",
        lambda c: base64.urlsafe_b64encode(b"12345678" + b'[["i",1]]').decode(),  # forged, wrong checksum
        lambda c: "A" * 600,
    ],
    ids=["truncated", "flipped", "extended", "garbage", "empty", "forged", "too-long"],
)
def test_tampered_cursor_is_400(mangle) -> None:
    cursor = encode_cursor((BASE, uuid.UUID(int=1)))
    with pytest.raises(Problem) as raised:
        decode_cursor(mangle(cursor))
    assert raised.value.status == 400
    assert raised.value.slug == "invalid-cursor"


def test_cursor_of_another_shape_is_400() -> None:
    with pytest.raises(Problem):
        decode_cursor(encode_cursor((1,)), size=2)


async def _insert_widgets(db: asyncpg.Connection, schema: HttpSchema, n: int) -> list[tuple[datetime, uuid.UUID]]:
    """``n`` widgets; every three share a created_at, so the id must break ties."""
    rows = []
    for i in range(n):
        created_at = BASE + timedelta(seconds=i // 3)
        widget_id = uuid.uuid4()
        owner = "rep-1" if i % 2 == 0 else "rep-2"
        rows.append((widget_id, owner, f"w{i}", i, Decimal("1.00"), "CNY", "{}", 1, created_at))
    await db.executemany(
        f'INSERT INTO "{schema.name}".widgets (id, owner, name, quantity, price, currency, attrs, version, created_at)'
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)",
        rows,
    )
    return sorted((r[8], r[0]) for r in rows)


async def _walk(client: httpx.AsyncClient, url: str) -> tuple[list[dict], list[str]]:
    items: list[dict] = []
    links: list[str] = []
    while True:
        response = await client.get(url, headers=bearer())
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        if body["next_cursor"] is None:
            assert "link" not in response.headers
            return items, links
        link = response.headers["link"]
        links.append(link)
        assert link.startswith("<") and link.endswith('>; rel="next"')
        url = link[1 : link.index(">")]
        assert parse_qs(urlsplit(url).query)["cursor"] == [body["next_cursor"]]


async def test_pages_cover_every_row_once_in_stable_order(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    keys = await _insert_widgets(http_db, http_schema, 23)
    items, links = await _walk(http_client, "/v1/widgets?limit=5")
    assert [uuid.UUID(i["id"]) for i in items] == [k[1] for k in keys]
    assert len(links) == 4

    descending, _ = await _walk(http_client, "/v1/widgets?limit=7&order=desc")
    assert [uuid.UUID(i["id"]) for i in descending] == [k[1] for k in reversed(keys)]

    default = await http_client.get("/v1/widgets", headers=bearer())
    assert len(default.json()["items"]) == 23 and default.json()["next_cursor"] is None


async def test_link_keeps_the_other_query_parameters(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    await _insert_widgets(http_db, http_schema, 10)
    items, links = await _walk(http_client, "/v1/widgets?owner=rep-2&limit=2")
    assert len(items) == 5 and {i["owner"] for i in items} == {"rep-2"}
    for link in links:
        query = parse_qs(urlsplit(link[1 : link.index(">")]).query)
        assert query["owner"] == ["rep-2"] and query["limit"] == ["2"]
        assert urlsplit(link[1 : link.index(">")]).path == "/v1/widgets"


async def test_rows_inserted_meanwhile_do_not_shift_pages(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    keys = await _insert_widgets(http_db, http_schema, 6)
    first = (await http_client.get("/v1/widgets?limit=3", headers=bearer())).json()
    # A row sorting before the cursor appears: page 2 neither repeats nor skips anything.
    await http_db.execute(
        f'INSERT INTO "{http_schema.name}".widgets (id, owner, name, quantity, price, currency, attrs, version, '
        "created_at) VALUES ($1, 'rep-1', 'early', 0, 1, 'CNY', '{}', 1, $2)",
        uuid.uuid4(),
        BASE - timedelta(days=1),
    )
    second = (await http_client.get(f"/v1/widgets?limit=3&cursor={first['next_cursor']}", headers=bearer())).json()
    assert [uuid.UUID(i["id"]) for i in first["items"] + second["items"]] == [k[1] for k in keys]


async def test_tampered_cursor_and_bad_limit_are_problems(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    await _insert_widgets(http_db, http_schema, 4)
    first = (await http_client.get("/v1/widgets?limit=2", headers=bearer())).json()
    cursor = first["next_cursor"]
    tampered = cursor[:-3] + ("x" if cursor[-3] != "x" else "y") + cursor[-2:]
    response = await http_client.get(f"/v1/widgets?cursor={tampered}", headers=bearer())
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "https://salesline.dev/problems/invalid-cursor"

    # A well-formed cursor whose values don't fit the sort key (int instead of timestamp) is 400 too.
    wrong_types = encode_cursor((1, 2))
    response = await http_client.get(f"/v1/widgets?cursor={wrong_types}", headers=bearer())
    assert response.status_code == 400

    for limit in ("0", "201", "-1", "ten"):
        response = await http_client.get(f"/v1/widgets?limit={limit}", headers=bearer())
        assert response.status_code == 422, limit
        assert response.json()["errors"][0]["parameter"] == "limit"
    assert (await http_client.get("/v1/widgets?limit=200", headers=bearer())).status_code == 200
