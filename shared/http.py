"""The HTTP face every service shares: app factory, request context, ops endpoints, logging.

``create_service_app(settings, title=..., routers=[...], lifespan=...)`` returns a FastAPI app
with:

- RFC 9457 problem responses for every error (:mod:`shared.errors`);
- :class:`RequestContextMiddleware` (pure ASGI: ``BaseHTTPMiddleware`` costs a task and a
  stream per request): ``X-Request-ID`` accepted or generated and echoed, ``X-Correlation-ID``
  and ``traceparent`` accepted, all put in ``shared.context.current_context`` so the events a
  request's unit of work writes carry them; Prometheus request metrics by route template;
  unexpected exceptions logged with the request id and answered with a generic 500 problem;
- ``/docs`` and ``/redoc`` served with Swagger UI and ReDoc assets from the ``fastapi_offline``
  package at ``/static-docs`` (no CDN: ops networks are often offline), ``/openapi.json`` with
  the bearer JWT security scheme and problem+json error schemas;
- ``/healthz`` (the process is alive), ``/readyz`` (PostgreSQL answers ``SELECT 1`` and the
  broker accepts a connection; 503 problem naming what is down) and ``/metrics``.

Lifespan contract: the service's ``lifespan(app)`` async context manager sets
``app.state.engine`` (AsyncEngine) and ``app.state.tables`` (PlatformTables); the factory sets
``app.state.settings`` and ``app.state.authenticator`` before it runs, and disposes the
engine after it exits (harmless if the service already did).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import telemetry
from shared.auth import Authenticator
from shared.config import ServiceSettings
from shared.context import (
    EventContext,
    child_traceparent,
    current_context,
    install_log_record_context,
    stamp_log_record,
    valid_traceparent,
)
from shared.errors import (
    PROBLEM_CONTENT_TYPE,
    Problem,
    ProblemDetails,
    install_problem_handlers,
    internal_error_response,
    problem_responses,
)
from shared.metrics import UNMATCHED_ROUTE, HttpMetrics, render_metrics

log = logging.getLogger("salesline.http")

STATIC_DOCS_PATH = "/static-docs"
# Only plain path segments: the prefix is written into the docs pages' HTML and JavaScript.
_FORWARDED_PREFIX_RE = re.compile(r"(/[A-Za-z0-9._-]+)+/?")
DEFAULT_MAX_BODY_SIZE = 1024 * 1024
READINESS_TIMEOUT_SECONDS = 2.0
BROKER_OK_CACHE_SECONDS = 5.0

# -- request context -------------------------------------------------------------------------

_ID_RE = re.compile(rb"[A-Za-z0-9._:@+=\-]{1,128}")


def _sane_id(value: bytes | None) -> str | None:
    if value is not None and _ID_RE.fullmatch(value):
        return value.decode("ascii")
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/orders/{order_id}``) or ``unmatched``."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Request id, correlation, trace context, metrics and the last-resort 500, in pure ASGI."""

    def __init__(self, app: ASGIApp, *, service: str, max_body_size: int | None = DEFAULT_MAX_BODY_SIZE) -> None:
        self.app = app
        self.metrics = HttpMetrics(service)
        self.max_body_size = max_body_size
        self.tracer = telemetry.tracer(service)  # None unless OTLP export is configured

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id_header = correlation_header = traceparent_header = content_length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id_header = value
            elif name == b"x-correlation-id":
                correlation_header = value
            elif name == b"traceparent":
                traceparent_header = value
            elif name == b"content-length":
                content_length = value
        request_id = _sane_id(request_id_header) or uuid.uuid4().hex
        # This request is a span of its own in the caller's trace (or the root of a new one).
        if self.tracer is None:
            span = None
            traceparent = child_traceparent(valid_traceparent(traceparent_header))
        else:
            span, traceparent = telemetry.start_span(
                self.tracer,
                scope["method"],
                telemetry.SpanKind.SERVER,
                valid_traceparent(traceparent_header),
                {"http.request.method": scope["method"], "url.scheme": scope.get("scheme", "http")},
            )
        context = EventContext(
            correlation_id=_sane_id(correlation_header) or request_id,
            causation_id=None,
            traceparent=traceparent,
            request_id=request_id,
        )
        request_id_bytes = request_id.encode("ascii")
        status = 500
        started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id_bytes)]
            await send(message)

        token = current_context.set(context)
        start = time.perf_counter()
        try:
            limit = self.max_body_size
            if limit is not None:
                if content_length is not None and (not content_length.isdigit() or int(content_length) > limit):
                    status = 413
                    await _too_large(limit).to_response(scope.get("path"))(scope, receive, send_with_request_id)
                    return
                receive = _limited_receive(receive, limit)
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            log.error(
                "unhandled %s on %s %s",
                type(exc).__name__,
                scope.get("method"),
                scope.get("path"),
                exc_info=exc,
            )
            if span is not None:
                telemetry.fail(span, exc)
            if started:
                raise
            status = 500
            response = internal_error_response(scope.get("path"))
            await response(scope, receive, send_with_request_id)
        finally:
            current_context.reset(token)
            route = route_template(scope)
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)
            if span is not None:
                _end_server_span(span, scope["method"], route, status)


def _end_server_span(span: telemetry.Span, method: str, route: str, status: int) -> None:
    # The route template, never the path: paths carry ids and signing-link tokens.
    if route != UNMATCHED_ROUTE:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(telemetry.Status(telemetry.StatusCode.ERROR))
    span.end()


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "Content Too Large",
        f"The request body is larger than {limit} bytes.",
        slug="content-too-large",
    )


def _limited_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that stops a (chunked) body at ``limit`` bytes with a 413 problem.

    An HTTPException raised while FastAPI reads the body reaches the problem handlers as is.
    """
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise StarletteHTTPException(413, _too_large(limit).detail)
        return message

    return limited


# -- logging ---------------------------------------------------------------------------------


class RequestContextFilter(logging.Filter):
    """Adds ``request_id``, ``correlation_id`` and ``trace_id`` (``-`` outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        stamp_log_record(record)
        return True


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, service, request/correlation id."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "request_id": getattr(record, "request_id", "-"),
            "correlation_id": getattr(record, "correlation_id", "-"),
            "trace_id": getattr(record, "trace_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: ServiceSettings) -> None:
    """JSON lines on stderr for the root logger, with request and trace ids; safe to call twice."""
    install_log_record_context()
    root = logging.getLogger()
    root.setLevel(settings.log_level.upper())
    for handler in root.handlers:
        if getattr(handler, "_salesline", False):
            return
    handler = logging.StreamHandler()
    handler._salesline = True  # type: ignore[attr-defined]
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(JsonLogFormatter(settings.service_name))
    root.addHandler(handler)


# -- readiness -------------------------------------------------------------------------------


class Readiness:
    """Checks PostgreSQL and RabbitMQ for ``/readyz``; a reachable broker is remembered for 5 s.

    Failures are logged by exception type only: the message of a connection error can carry
    the broker URL, credentials included.
    """

    def __init__(self, amqp_url: str, *, timeout: float = READINESS_TIMEOUT_SECONDS) -> None:
        self.amqp_url = amqp_url
        self.timeout = timeout
        self._broker_ok_until = 0.0
        self._broker_lock = asyncio.Lock()

    async def database(self, engine: Any) -> bool:
        if engine is None:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", never a 500
            log.warning("readiness: database check failed (%s)", type(exc).__name__)
            return False

    async def broker(self) -> bool:
        if time.monotonic() < self._broker_ok_until:
            return True
        async with self._broker_lock:  # concurrent probes share one connection attempt
            if time.monotonic() < self._broker_ok_until:
                return True
            try:
                async with asyncio.timeout(self.timeout):
                    connection = await aio_pika.connect(self.amqp_url, timeout=self.timeout)
                    await connection.close()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready", never a 500
                log.warning("readiness: broker check failed (%s)", type(exc).__name__)
                return False
            self._broker_ok_until = time.monotonic() + BROKER_OK_CACHE_SECONDS
            return True


# -- OpenAPI ---------------------------------------------------------------------------------

_PROBLEM_REF = "#/components/schemas/ProblemDetails"
_REPLACED_REFS = ("#/components/schemas/ProblemDetails", "#/components/schemas/HTTPValidationError")


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}


def _postprocess_openapi(schema: dict[str, Any]) -> None:
    """Errors as problem+json (FastAPI's 422 schema replaced); 401/403 on secured operations."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["ProblemDetails"] = problem_schema
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, response in responses.items():
                content = response.get("content", {})
                json_schema = content.get("application/json", {}).get("schema", {})
                if str(status)[0] in "45" and json_schema.get("$ref") in _REPLACED_REFS:
                    response["content"] = _problem_content()
                    if json_schema.get("$ref") == "#/components/schemas/HTTPValidationError":
                        response["description"] = "Validation failed (problem+json with `errors`)"
            if operation.get("security"):
                for status, description in (
                    ("401", "Missing, invalid or expired bearer token"),
                    ("403", "The caller lacks a required role"),
                ):
                    responses.setdefault(status, {"description": description, "content": _problem_content()})
    text_schema = json.dumps(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}" not in text_schema and name in components:
            if f'"#/components/schemas/{name}"' not in json.dumps(components):
                del components[name]


def _install_openapi(app: FastAPI) -> None:
    generate = app.openapi
    done: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI until the routes change
        if not done or done[0] != id(schema):
            _postprocess_openapi(schema)
            done[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# -- the factory -----------------------------------------------------------------------------


def docs_static_dir() -> Path:
    """Swagger UI and ReDoc bundles shipped by ``fastapi_offline`` (used for nothing else)."""
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    version: str = "0.1.0",
    routers: Iterable[APIRouter] = (),
    lifespan: Lifespan | None = None,
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    configure_logs: bool = True,
) -> FastAPI:
    """A service's FastAPI app with Salesline's HTTP conventions (see the module docstring)."""
    if configure_logs:
        configure_logging(settings)

    @asynccontextmanager
    async def service_lifespan(app: FastAPI) -> AsyncIterator[Any]:
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    for name in ("engine", "tables"):
                        if getattr(app.state, name, None) is None:
                            log.warning("lifespan did not set app.state.%s (readiness/idempotency need it)", name)
                    yield state
        finally:
            engine = getattr(app.state, "engine", None)
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=service_lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True, "validatorUrl": None},
    )
    app.state.settings = settings
    app.state.authenticator = Authenticator(settings)
    app.state.readiness = Readiness(settings.amqp_url)
    install_problem_handlers(app)
    # The body limit lives in our middleware rather than FastAPI's ``max_body_size``: Starlette's
    # limiter answers an oversized Content-Length with a plain-text 413, not a problem.
    app.add_middleware(RequestContextMiddleware, service=settings.service_name, max_body_size=max_body_size)
    # Business routes first: Starlette tries routes in order, and they carry the traffic.
    for router in routers:
        app.include_router(router)
    _install_docs(app)
    _install_ops_routes(app)
    _install_openapi(app)
    return app


def _install_docs(app: FastAPI) -> None:
    app.mount(STATIC_DOCS_PATH, StaticFiles(directory=docs_static_dir()), name="static-docs")

    def _prefix(request: Request) -> str:
        # Behind the gateway the docs live under /services/<name>/ (X-Forwarded-Prefix).
        forwarded = request.headers.get("x-forwarded-prefix", "")
        if _FORWARDED_PREFIX_RE.fullmatch(forwarded):
            return forwarded.rstrip("/")
        return request.scope.get("root_path", "").rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _prefix(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_DOCS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_DOCS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_DOCS_PATH}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _prefix(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_DOCS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_DOCS_PATH}/favicon.png",
            with_google_fonts=False,
        )


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, str] | None = None


def _install_ops_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers", response_model=HealthStatus)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: PostgreSQL and RabbitMQ are reachable",
        response_model=HealthStatus,
        responses=problem_responses(503),
    )
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        readiness: Readiness = state.readiness
        database_ok, broker_ok = await asyncio.gather(
            readiness.database(getattr(state, "engine", None)), readiness.broker()
        )
        checks = {"database": "ok" if database_ok else "down", "broker": "ok" if broker_ok else "down"}
        down = [name for name, result in checks.items() if result != "ok"]
        if down:
            raise Problem(
                503,
                "Not ready",
                f"Unavailable: {', '.join(down)}.",
                slug="not-ready",
                headers={"Retry-After": "5"},
                checks=checks,
            )
        return JSONResponse({"status": "ok", "checks": checks})

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)
