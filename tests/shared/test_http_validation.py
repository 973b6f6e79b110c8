"""Bad input is a 4xx problem+json, never a 500, and writes nothing."""

import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.shared.conftest import HttpSchema, bearer, count, widget_body

PROBLEM = "application/problem+json"


async def _assert_nothing_written(db: asyncpg.Connection, schema: HttpSchema) -> None:
    assert await count(db, schema, "widgets") == 0
    assert await count(db, schema, "idempotency_keys") == 0


async def _post_raw(client: httpx.AsyncClient, content: bytes, *, key: str | None = "k-1") -> httpx.Response:
    headers = {**bearer(), "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return await client.post("/v1/widgets", content=content, headers=headers)


async def test_valid_create_is_201_with_money_as_string(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    response = await http_client.post("/v1/widgets", json=widget_body(price="7", currency="usd"), headers=bearer())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["price"] == "7.00" and body["currency"] == "USD" and body["owner"] == "rep-1"
    assert await count(http_db, http_schema, "widgets") == 1


@pytest.mark.parametrize(
    "content",
    [b'{"name": "gear", "price": "1.00"', b"{'name': 'gear'}", b"\xff\xfe\x00garbage", b"[1, 2,]"],
    ids=["truncated", "single-quotes", "binary", "trailing-comma"],
)
async def test_malformed_json_is_400(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema, content: bytes
) -> None:
    response = await _post_raw(http_client, content)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["title"] == "Malformed JSON"
    assert body["type"] == "https://salesline.dev/problems/malformed-json"
    assert body["instance"] == "/v1/widgets"
    assert body["request_id"] == response.headers["x-request-id"]
    await _assert_nothing_written(http_db, http_schema)


def _pointers(response: httpx.Response) -> dict[str, str]:
    return {e["pointer"]: e["code"] for e in response.json()["errors"] if "pointer" in e}


@pytest.mark.parametrize(
    ("body", "pointer", "code"),
    [
        (widget_body(quantity="many"), "#/quantity", "int_parsing"),
        (widget_body(quantity=[1]), "#/quantity", "int_type"),
        (widget_body(name=None), "#/name", "string_type"),
        ({"price": "1.00"}, "#/name", "missing"),
        (widget_body(name="bad\x00name"), "#/name", "string_nul"),
        (widget_body(name="lone \ud800 surrogate"), "#/name", "string_unicode"),
        (widget_body(attrs={"deep": [{"x": "nul\x00"}]}), "#/attrs", "string_nul"),
        (widget_body(attrs={"k\x00": 1}), "#/attrs", "string_nul"),
        (widget_body(quantity=2**63), "#/quantity", "int64_range"),
        (widget_body(quantity=-(2**63) - 1), "#/quantity", "int64_range"),
        (widget_body(attrs={"n": [1, 10**30]}), "#/attrs", "int64_range"),
        (widget_body(unknown_field=1), "#/unknown_field", "extra_forbidden"),
        (widget_body(price=12.5), "#/price", "money_type"),
        (widget_body(price="12.345"), "#/price", "money_format"),
        (widget_body(price="1e3"), "#/price", "money_format"),
        (widget_body(price="NaN"), "#/price", "money_format"),
        (widget_body(price="-1.00"), "#/price", "money_negative"),
        (widget_body(price="1" * 13), "#/price", "money_format"),
        (widget_body(currency="XYZ"), "#/currency", "currency"),
        (widget_body(currency=123), "#/currency", "currency"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_invalid_fields_are_422_field_problems(
    http_client: httpx.AsyncClient,
    http_db: asyncpg.Connection,
    http_schema: HttpSchema,
    body: dict,
    pointer: str,
    code: str,
) -> None:
    # json.dumps, not httpx's json=, so lone surrogates and NULs travel as JSON escapes.
    response = await _post_raw(http_client, json.dumps(body).encode())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "https://salesline.dev/problems/validation-failed"
    assert _pointers(response).get(pointer) == code, problem["errors"]
    for error in problem["errors"]:
        assert error["loc"][0] == "body" and error["message"]
        assert "input" not in error
    await _assert_nothing_written(http_db, http_schema)


async def test_field_problems_never_echo_a_huge_or_secret_input(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    secret = "sk_live_" + "S" * 5000
    response = await _post_raw(http_client, json.dumps(widget_body(quantity=secret, **{secret: 1})).encode())
    assert response.status_code == 422
    assert "SSSSSSSSSS" * 10 not in response.text
    assert len(response.content) < 3000
    await _assert_nothing_written(http_db, http_schema)


async def test_body_that_is_not_an_object_or_missing_is_422(http_client: httpx.AsyncClient) -> None:
    for content in (b"[]", b'"text"', b"42", b"null", b""):
        response = await _post_raw(http_client, content, key=None)
        assert response.status_code == 422, (content, response.text)
        assert response.headers["content-type"] == PROBLEM


async def test_body_without_json_content_type_is_422_not_parsed(http_client: httpx.AsyncClient) -> None:
    response = await http_client.post(
        "/v1/widgets",
        content=json.dumps(widget_body()).encode(),
        headers={**bearer(), "Content-Type": "text/plain"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


async def test_parameters_are_validated_as_problems(http_client: httpx.AsyncClient) -> None:
    path_too_big = await http_client.get(f"/v1/widgets/by-quantity/{2**63}", headers=bearer())
    assert path_too_big.status_code == 422
    assert path_too_big.json()["errors"][0]["parameter"] == "quantity"
    assert path_too_big.json()["errors"][0]["loc"] == ["path", "quantity"]

    in_range = await http_client.get(f"/v1/widgets/by-quantity/{2**63 - 1}", headers=bearer())
    assert in_range.status_code == 200 and in_range.json() == {"count": 0}

    not_uuid = await http_client.get("/v1/widgets/not-a-uuid", headers=bearer())
    assert not_uuid.status_code == 422
    assert not_uuid.json()["errors"][0]["code"] == "uuid_parsing"

    nul_query = await http_client.get("/v1/widgets", params={"owner": "a\x00b"}, headers=bearer())
    assert nul_query.status_code == 422
    assert nul_query.json()["errors"][0] == {
        "loc": ["query", "owner"],
        "parameter": "owner",
        "message": "NUL characters (\\u0000) are not allowed",
        "code": "string_nul",
    }


async def test_oversized_chunked_body_is_413_and_writes_nothing(
    http_client: httpx.AsyncClient, http_db: asyncpg.Connection, http_schema: HttpSchema
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "gear", "price": "1.00", "attrs": {"blob": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    response = await http_client.post(
        "/v1/widgets",
        content=chunks(),
        headers={**bearer(), "Content-Type": "application/json", "Idempotency-Key": "k-big"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == "The request body is larger than 1048576 bytes."
    assert response.json()["type"] == "https://salesline.dev/problems/content-too-large"
    await _assert_nothing_written(http_db, http_schema)
