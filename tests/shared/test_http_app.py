"""create_service_app: docs without CDN, OpenAPI, ops endpoints, request context, metrics, 500s."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re

import aio_pika
import httpx
import pytest
from fastapi import FastAPI

from shared.context import EventContext, current_context
from shared.http import JsonLogFormatter, RequestContextFilter, docs_static_dir
from tests.shared.conftest import (
    UNREACHABLE_AMQP_URL,
    HttpSchema,
    bearer,
    build_app,
    http_settings,
    running,
    widget_body,
)

PROBLEM = "application/problem+json"


def _assert_local_assets_only(html: str) -> list[str]:
    assert "cdn" not in html.lower()
    assert "googleapis" not in html
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html), "an asset is loaded from another host"
    return re.findall(r"(?:src|href)=\"([^\"]+)\"", html)


async def test_docs_and_redoc_use_local_assets_that_are_served(http_client: httpx.AsyncClient) -> None:
    swagger = await http_client.get("/docs")
    assert swagger.status_code == 200
    assert swagger.headers["content-type"].startswith("text/html")
    swagger_assets = _assert_local_assets_only(swagger.text)
    assert set(swagger_assets) == {
        "/static-docs/swagger-ui.css",
        "/static-docs/favicon.png",
        "/static-docs/swagger-ui-bundle.js",
    }
    assert "url: '/openapi.json'" in swagger.text

    redoc = await http_client.get("/redoc")
    assert redoc.status_code == 200
    redoc_assets = _assert_local_assets_only(redoc.text)
    assert set(redoc_assets) == {"/static-docs/favicon.png", "/static-docs/redoc.standalone.js"}
    assert 'spec-url="/openapi.json"' in redoc.text

    expected_types = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for asset in {*swagger_assets, *redoc_assets}:
        response = await http_client.get(asset)
        assert response.status_code == 200, asset
        suffix = asset[asset.rindex(".") :]
        assert expected_types[suffix] in response.headers["content-type"], asset
        assert response.content == (docs_static_dir() / asset.rsplit("/", 1)[1]).read_bytes()


async def test_openapi_documents_bearer_auth_problems_and_idempotency(http_client: httpx.AsyncClient) -> None:
    response = await http_client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"] == {
        "title": "HTTP layer test",
        "description": "A tiny service exercising shared.http",
        "version": "9.9.9",
    }
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    create = spec["paths"]["/v1/widgets"]["post"]
    assert create["security"] == [{"bearerAuth": []}]
    for status in ("401", "403", "409", "422"):
        assert create["responses"][status]["content"] == {
            PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
        }, status
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= create["parameters"][0].items()
    read = spec["paths"]["/v1/widgets/{widget_id}"]["get"]
    assert "Idempotency-Key" not in str(read.get("parameters"))
    assert read["responses"]["404"]["content"][PROBLEM]
    # FastAPI's own 422 schema is replaced everywhere.
    assert "HTTPValidationError" not in response.text
    problem = spec["components"]["schemas"]["ProblemDetails"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])
    # Public ops endpoints carry no security requirement.
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert "security" not in spec["paths"]["/readyz"]["get"]
    # Money is documented as a string, never a number.
    create_schema = spec["components"]["schemas"]["WidgetCreate"]["properties"]
    assert create_schema["price"]["type"] == "string"
    assert create_schema["currency"]["default"] == "CNY"


async def test_healthz_and_metrics_are_public(http_client: httpx.AsyncClient) -> None:
    health = await http_client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}

    await http_client.get("/v1/widgets/6c9a0f5e-2b51-4a43-9d43-0c0cf6a9a3b1", headers=bearer())
    await http_client.get("/v1/widgets/0fb1a1b0-5a3c-4f4b-8b53-3e4f2c2c1d10", headers=bearer())
    await http_client.get("/no/such/path/1234")
    metrics = await http_client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    templated = re.search(
        r'http_requests_total\{method="GET",route="/v1/widgets/\{widget_id\}",service="test_http",status="404"\} '
        r"(\d+)\.0",
        text,
    )
    assert templated and int(templated[1]) >= 2
    assert 'route="unmatched",service="test_http",status="404"' in text
    assert "6c9a0f5e" not in text and "/no/such/path" not in text
    assert re.search(
        r'http_request_duration_seconds_count\{method="GET",route="/v1/widgets/\{widget_id\}",service="test_http"\}',
        text,
    )


async def _broker_reachable(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=2)
    except Exception:  # noqa: BLE001 - only deciding whether to skip
        return False
    await connection.close()
    return True


async def test_readyz_ok_when_database_and_broker_answer(http_schema: HttpSchema) -> None:
    url = os.environ.get("SALESLINE_AMQP_URL", "")
    if not url or not await _broker_reachable(url):
        pytest.skip("RabbitMQ at SALESLINE_AMQP_URL is not reachable")
    app = build_app(http_schema, http_settings(amqp_url=url))
    async with running(app) as client:
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


async def test_readyz_503_names_the_broker_without_leaking_credentials(http_schema: HttpSchema) -> None:
    app = build_app(http_schema, http_settings(amqp_url=UNREACHABLE_AMQP_URL))
    async with running(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["checks"] == {"database": "ok", "broker": "down"}
    assert "broker" in body["detail"] and "database" not in body["detail"]
    assert "s3cret" not in response.text and "salesline:" not in response.text


async def test_readyz_503_when_the_database_is_down(http_schema: HttpSchema) -> None:
    settings = http_settings(amqp_url=UNREACHABLE_AMQP_URL, db_port=1)
    app = build_app(http_schema, settings)
    async with running(app) as client:
        started = asyncio.get_running_loop().time()
        response = await client.get("/readyz")
        elapsed = asyncio.get_running_loop().time() - started
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "down", "broker": "down"}
    assert "Unavailable: database, broker." == response.json()["detail"]
    assert elapsed < 5


async def test_request_id_is_generated_or_propagated_with_correlation_and_trace(
    http_client: httpx.AsyncClient,
) -> None:
    generated = await http_client.get("/v1/probe/context")
    request_id = generated.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    started = generated.json()
    assert started == {
        "request_id": request_id,
        "correlation_id": request_id,
        "causation_id": None,
        "traceparent": started["traceparent"],
    }
    # No trace came in: the request starts one (sampled).
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", started["traceparent"])

    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    given = await http_client.get(
        "/v1/probe/context",
        headers={"X-Request-ID": "req-42.a", "X-Correlation-ID": "order-flow-7", "traceparent": traceparent},
    )
    assert given.headers["x-request-id"] == "req-42.a"
    joined = given.json()
    assert joined == {
        "request_id": "req-42.a",
        "correlation_id": "order-flow-7",
        "causation_id": None,
        "traceparent": joined["traceparent"],
    }
    # The request is a new span (its own span id) in the caller's trace, with the caller's flags.
    trace, span = traceparent.split("-")[1:3]
    assert re.fullmatch(rf"00-{trace}-(?!{span})[0-9a-f]{{16}}-01", joined["traceparent"])

    insane = await http_client.get(
        "/v1/probe/context",
        headers={"X-Request-ID": "x" * 129, "X-Correlation-ID": "bad value;", "traceparent": "00-zz"},
    )
    new_id = insane.headers["x-request-id"]
    assert new_id != "x" * 129 and re.fullmatch(r"[0-9a-f]{32}", new_id)
    assert insane.json()["correlation_id"] == new_id
    # A malformed traceparent is dropped: a new trace starts.
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", insane.json()["traceparent"])


async def test_problem_carries_request_id_and_instance(http_client: httpx.AsyncClient) -> None:
    response = await http_client.get("/no/such/thing", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "trace-me"
    assert response.json() == {
        "type": "https://salesline.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "instance": "/no/such/thing",
        "request_id": "trace-me",
    }


async def test_method_not_allowed_is_a_problem_with_allow(http_client: httpx.AsyncClient) -> None:
    response = await http_client.delete("/v1/widgets", headers=bearer())
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert "POST" in response.headers["allow"]


async def test_unexpected_exception_is_a_generic_500_logged_with_request_id(
    http_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestContextFilter())
    with caplog.at_level(logging.ERROR, logger="salesline.http"):
        response = await http_client.get("/v1/probe/crash", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "boom-1"
    body = response.json()
    assert body["type"] == "https://salesline.dev/problems/internal-error"
    assert body["request_id"] == "boom-1"
    assert "secret" not in response.text and "ValueError" not in response.text
    records = [r for r in caplog.records if r.name == "salesline.http"]
    assert records and records[-1].request_id == "boom-1"
    assert records[-1].exc_info and "secret-api-key" in str(records[-1].exc_info[1])

    metrics = (await http_client.get("/metrics")).text
    assert 'route="/v1/probe/crash",service="test_http",status="500"' in metrics


async def test_crash_inside_a_create_leaks_nothing_and_writes_nothing(
    http_client: httpx.AsyncClient, http_db, http_schema: HttpSchema
) -> None:
    response = await http_client.post(
        "/v1/widgets", json=widget_body(name="crash"), headers={**bearer(), "Idempotency-Key": "k-crash"}
    )
    assert response.status_code == 500
    assert "hunter2" not in response.text and "postgresql" not in response.text
    assert await http_db.fetchval(f'SELECT count(*) FROM "{http_schema.name}".idempotency_keys') == 0


async def test_body_over_the_limit_is_413_problem(http_schema: HttpSchema) -> None:
    app: FastAPI = build_app(http_schema, http_settings(amqp_url=UNREACHABLE_AMQP_URL))
    async with running(app) as client:
        big = widget_body(attrs={"blob": "x" * (1024 * 1024 + 10)})
        response = await client.post("/v1/widgets", json=big, headers=bearer())
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"]
    assert response.json()["type"] == "https://salesline.dev/problems/content-too-large"


def test_json_log_lines_carry_the_request_context() -> None:
    formatter = JsonLogFormatter("orders")
    context_filter = RequestContextFilter()
    record = logging.LogRecord("salesline.x", logging.WARNING, __file__, 1, "approved %s", ("SO-1",), None)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    token = current_context.set(EventContext(correlation_id="corr-1", request_id="req-1", traceparent=traceparent))
    try:
        assert context_filter.filter(record)
    finally:
        current_context.reset(token)
    line = json.loads(formatter.format(record))
    assert line["message"] == "approved SO-1"
    assert (line["service"], line["request_id"], line["correlation_id"]) == ("orders", "req-1", "corr-1")
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["level"] == "WARNING" and line["time"].endswith("+00:00")

    outside = logging.LogRecord("salesline.x", logging.INFO, __file__, 1, "idle", (), None)
    context_filter.filter(outside)
    assert json.loads(formatter.format(outside))["request_id"] == "-"


async def test_a_started_service_leaves_its_startup_heap_out_of_garbage_collection() -> None:
    """Full collections over the startup heap paused the event loop under load: a started app
    freezes it (and collects less often); a stopped one gives it back to the collector."""
    from tests.conftest import service_module, settings_for

    app = service_module("contracts", "main").create_app(settings_for("contracts"))
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] >= 10_000
    assert gc.get_freeze_count() == 0
