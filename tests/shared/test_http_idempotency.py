"""Idempotency-Key on creates: replay, reuse with another body (422), concurrent retry (409)."""

import asyncio
import json
from datetime import timedelta

import asyncpg
import httpx
from fastapi import FastAPI

from shared.idempotency import purge_idempotency_keys
from tests.shared.conftest import HttpSchema, bearer, count, widget_body

PROBLEM = "application/problem+json"


def _headers(key: str, sub: str = "rep-1") -> dict[str, str]:
    return {**bearer(sub), "Idempotency-Key": key}


async def test_same_key_and_body_replays_the_first_response(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    first = await http_client.post("/v1/widgets", json=widget_body(), headers=_headers("order-123"))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers

    # Same JSON, other key order and spacing: still the same request.
    same = json.dumps(dict(reversed(list(widget_body().items()))), indent=2).encode()
    replay = await http_client.post(
        "/v1/widgets", content=same, headers={**_headers("order-123"), "Content-Type": "application/json"}
    )
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert replay.headers["location"] == first.headers["location"] == f"/v1/widgets/{first.json()['id']}"
    assert replay.headers["etag"] == first.headers["etag"] == '"1"'
    assert replay.headers["content-type"] == "application/json"
    # A replay is a new request with its own id.
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    assert await count(http_db, http_schema, "widgets") == 1
    row = await http_db.fetchrow(f'SELECT * FROM "{http_schema.name}".idempotency_keys')
    assert row["principal"] == "rep-1" and row["key"] == "order-123" and row["status_code"] == 201
    assert row["method_path"] == "POST /v1/widgets"
    assert set(json.loads(row["response_headers"])) == {"content-type", "location", "etag"}


async def test_same_key_with_another_body_is_422(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    first = await http_client.post("/v1/widgets", json=widget_body(), headers=_headers("k-2"))
    assert first.status_code == 201
    other = await http_client.post("/v1/widgets", json=widget_body(quantity=4), headers=_headers("k-2"))
    assert other.status_code == 422
    assert other.headers["content-type"] == PROBLEM
    assert other.json()["type"] == "https://salesline.dev/problems/idempotency-key-reused"
    assert await count(http_db, http_schema, "widgets") == 1


async def test_keys_are_per_principal(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    a = await http_client.post("/v1/widgets", json=widget_body(), headers=_headers("shared-key", "rep-a"))
    b = await http_client.post("/v1/widgets", json=widget_body(), headers=_headers("shared-key", "rep-b"))
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers
    assert await count(http_db, http_schema, "widgets") == 2


async def test_concurrent_retry_is_409_then_replays(
    http_app: FastAPI, http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    gates = http_app.state.gates
    body = widget_body(name="slow")
    first = asyncio.create_task(http_client.post("/v1/widgets", json=body, headers=_headers("k-slow")))
    await asyncio.wait_for(gates.entered.wait(), 5)

    retry = await http_client.post("/v1/widgets", json=body, headers=_headers("k-slow"))
    assert retry.status_code == 409
    assert retry.headers["content-type"] == PROBLEM
    assert retry.headers["retry-after"] == "1"
    assert retry.json()["type"] == "https://salesline.dev/problems/idempotency-key-in-flight"
    # Reusing an in-flight key for another body is still a 422.
    other = await http_client.post("/v1/widgets", json=widget_body(name="other"), headers=_headers("k-slow"))
    assert other.status_code == 422

    gates.release.set()
    done = await asyncio.wait_for(first, 5)
    assert done.status_code == 201
    again = await http_client.post("/v1/widgets", json=body, headers=_headers("k-slow"))
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == done.json()["id"]
    assert await count(http_db, http_schema, "widgets") == 1


async def test_failed_attempt_releases_the_key_for_a_retry(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    failed = await http_client.post("/v1/widgets", json=widget_body(name="conflict"), headers=_headers("k-3"))
    assert failed.status_code == 409
    assert failed.json()["type"] == "https://salesline.dev/problems/widget-conflict"
    assert await count(http_db, http_schema, "idempotency_keys") == 0
    assert await count(http_db, http_schema, "widgets") == 0

    # Validation failures release the key too, and the client may then fix the body.
    invalid = await http_client.post("/v1/widgets", json=widget_body(quantity="x"), headers=_headers("k-4"))
    assert invalid.status_code == 422
    fixed = await http_client.post("/v1/widgets", json=widget_body(), headers=_headers("k-4"))
    assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers

    forbidden = await http_client.post(
        "/v1/widgets", json=widget_body(), headers={**bearer("fin-1", "finance"), "Idempotency-Key": "k-5"}
    )
    assert forbidden.status_code == 403
    assert await count(http_db, http_schema, "idempotency_keys") == 1  # only k-4's success


async def test_bad_keys_are_400(http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema) -> None:
    for key in ("", "x" * 256, "has space", "tab\tkey", "ключ"):
        response = await http_client.post(
            "/v1/widgets",
            json=widget_body(),
            headers={**bearer(), "Idempotency-Key": key.encode("utf-8")},
        )
        assert response.status_code == 400, key
        assert response.json()["type"] == "https://salesline.dev/problems/invalid-idempotency-key"
    ok = await http_client.post("/v1/widgets", json=widget_body(), headers=_headers("x" * 255))
    assert ok.status_code == 201
    assert await count(http_db, http_schema, "widgets") == 1


async def test_without_a_token_the_endpoint_answers_401_and_nothing_is_reserved(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    response = await http_client.post("/v1/widgets", json=widget_body(), headers={"Idempotency-Key": "k-anon"})
    assert response.status_code == 401
    assert await count(http_db, http_schema, "idempotency_keys") == 0


async def test_stale_in_flight_reservation_reports_unknown_outcome(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    first = await http_client.post("/v1/widgets", json=widget_body(), headers=_headers("k-stale"))
    assert first.status_code == 201
    # As if the process died after the commit but before the response was stored.
    await http_db.execute(
        f"UPDATE \"{http_schema.name}\".idempotency_keys SET status_code = NULL, created_at = now() - interval '1 hour'"
    )
    retry = await http_client.post("/v1/widgets", json=widget_body(), headers=_headers("k-stale"))
    assert retry.status_code == 409
    assert retry.json()["type"] == "https://salesline.dev/problems/idempotency-outcome-unknown"
    assert await count(http_db, http_schema, "widgets") == 1


async def test_purge_deletes_keys_older_than_24_hours(
    http_app: FastAPI, http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    for key in ("old", "new"):
        assert (await http_client.post("/v1/widgets", json=widget_body(), headers=_headers(key))).status_code == 201
    await http_db.execute(
        f"UPDATE \"{http_schema.name}\".idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'"
    )
    deleted = await purge_idempotency_keys(http_app.state.engine, http_schema.tables.idempotency_keys)
    assert deleted == 1
    keys = await http_db.fetch(f'SELECT key FROM "{http_schema.name}".idempotency_keys')
    assert [r["key"] for r in keys] == ["new"]
    assert (
        await purge_idempotency_keys(
            http_app.state.engine, http_schema.tables.idempotency_keys, older_than=timedelta(0)
        )
        == 1
    )
