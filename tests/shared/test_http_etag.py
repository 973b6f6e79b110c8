"""ETag on reads, If-Match on writes: 412 on mismatch, absent If-Match allowed."""

import asyncpg
import httpx
import pytest
from starlette.requests import Request

from shared.concurrency import check_if_match, etag_for, if_match_version
from shared.errors import Problem
from tests.shared.conftest import HttpSchema, bearer, widget_body

PROBLEM = "application/problem+json"


def _request(if_match: str | None) -> Request:
    headers = [(b"if-match", if_match.encode())] if if_match is not None else []
    return Request({"type": "http", "method": "PUT", "path": "/x", "headers": headers, "query_string": b""})


def test_etag_is_strong_and_quoted() -> None:
    assert etag_for(7) == '"7"'
    assert etag_for("v3") == '"v3"'
    with pytest.raises(ValueError):
        etag_for('a"b')


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, True),
        ('"3"', True),
        ('"1", "3"', True),
        ("*", True),
        ('"2"', False),
        ('W/"3"', False),  # weak tags never match If-Match (strong comparison)
        ("3", False),
    ],
)
def test_check_if_match(header: str | None, matches: bool) -> None:
    if matches:
        check_if_match(_request(header), 3)
    else:
        with pytest.raises(Problem) as raised:
            check_if_match(_request(header), 3)
        assert raised.value.status == 412
        assert raised.value.headers["ETag"] == '"3"'


def test_required_if_match_is_428_and_version_parsing() -> None:
    with pytest.raises(Problem) as raised:
        check_if_match(_request(None), 3, required=True)
    assert raised.value.status == 428
    assert if_match_version(_request('"12"')) == "12"
    assert if_match_version(_request("*")) is None
    assert if_match_version(_request(None)) is None
    with pytest.raises(Problem) as malformed:
        if_match_version(_request('"1", "2"'))
    assert malformed.value.status == 400


async def test_read_has_etag_and_stale_write_is_412(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    created = await http_client.post("/v1/widgets", json=widget_body(), headers=bearer())
    url = created.headers["location"]
    read = await http_client.get(url, headers=bearer())
    assert read.status_code == 200
    assert read.headers["etag"] == '"1"'

    updated = await http_client.put(url, json={"name": "cog"}, headers={**bearer(), "If-Match": '"1"'})
    assert updated.status_code == 200
    assert updated.headers["etag"] == '"2"'
    assert updated.json()["name"] == "cog"

    stale = await http_client.put(url, json={"name": "sprocket"}, headers={**bearer(), "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == PROBLEM
    assert stale.headers["etag"] == '"2"'
    assert stale.json()["type"] == "https://salesline.dev/problems/etag-mismatch"
    assert stale.json()["current_etag"] == '"2"'
    row = await http_db.fetchrow(f'SELECT name, version FROM "{http_schema.name}".widgets')
    assert (row["name"], row["version"]) == ("cog", 2)

    # Without If-Match the write is unconditional.
    blind = await http_client.put(url, json={"name": "sprocket"}, headers=bearer())
    assert blind.status_code == 200 and blind.headers["etag"] == '"3"'
