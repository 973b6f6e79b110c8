"""``Idempotency-Key`` on creates (DESIGN.md section 4): mobile clients retry safely.

A router opts in with its route class; nothing changes in the endpoint::

    router = APIRouter(prefix="/v1/orders", route_class=IdempotentRoute)

    @router.post("", status_code=201, response_model=OrderRead, responses=problem_responses(409, 422))
    async def create_order(body: OrderCreate, response: Response,
                           principal: Principal = Depends(require_roles(SALES_REP))):
        ...                                   # handler runs its unit of work and commits
        response.headers["Location"] = f"/v1/orders/{order.id}"
        return order

For a ``POST`` carrying ``Idempotency-Key`` (1-255 visible ASCII characters, else 400) and a
valid bearer token, keyed by (principal ``sub``, key) in the service's ``idempotency_keys``
table:

1. a reservation row (``status_code`` NULL) is inserted in its own autocommitted statement,
   before the endpoint runs;
2. a retry with the same key and the same request (hash of method, path, query and canonical
   JSON body) replays the stored response: status, body, ``Location``/``ETag``/
   ``Content-Type``/``Last-Modified``, plus ``Idempotent-Replayed: true``;
3. the same key with another request is a 422 problem; a retry while the first is still in
   flight is a 409 problem (``Retry-After: 1``);
4. once the endpoint returned (its unit of work has committed) a 2xx/3xx response is stored on
   the reservation; a 4xx/5xx or an exception deletes the reservation, so the client can
   retry with the same key.

If the process dies between the endpoint's commit and step 4, the outcome is unknown and the
reservation stays: retries get 409 (``idempotency-outcome-unknown`` once it is older than
``STALE_AFTER``) rather than risk creating the thing twice; the client checks and uses a new
key. :func:`purge_idempotency_keys` deletes keys older than 24 h (run it from a timer).

Requests without the header, other methods and requests without a valid token go straight to
the endpoint (which still enforces its own auth). :func:`run_idempotent` is the same logic for
code that is not a FastAPI route.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from shared.auth import AuthError, Principal, authenticate_request
from shared.errors import Problem
from shared.single_statement import Parameters, compiled_text, driver_arguments, fetch_alone

log = logging.getLogger("salesline.idempotency")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
RETENTION = timedelta(hours=24)
STALE_AFTER = timedelta(minutes=10)
# Response headers worth replaying; the rest (request id, dates, ...) belong to the new request.
REPLAYED_HEADERS = ("content-type", "location", "etag", "last-modified", "content-location")

_KEY_RE = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}")


def parse_key(value: str | None) -> str | None:
    """The Idempotency-Key header value, or a 400 problem when it is unusable."""
    if value is None:
        return None
    if not _KEY_RE.fullmatch(value):
        raise Problem(
            400,
            "Invalid Idempotency-Key",
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} visible ASCII characters (a UUID is a good choice).",
            slug="invalid-idempotency-key",
        )
    return value


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """SHA-256 over the request; JSON bodies are canonicalised so key order and spacing don't matter."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, UnicodeDecodeError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode()):
        digest.update(part)
        digest.update(b"\n")
    digest.update(canonical)
    return digest.hexdigest()


def _replay(row: Any) -> Response:
    headers = dict(row["response_headers"] or {})
    headers["Idempotent-Replayed"] = "true"
    response = Response(content=row["response_body"] or b"", status_code=row["status_code"])
    # Response() sets content-length itself; add the stored headers as they were.
    for name, value in headers.items():
        response.headers[name] = value
    return response


def _stored_headers(response: Response) -> dict[str, str]:
    return {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}


async def run_idempotent(
    request: Request,
    principal: Principal,
    engine: AsyncEngine,
    table: Table,
    call: Callable[[], Awaitable[Response]],
) -> Response:
    """Run ``call`` at most once per (principal, Idempotency-Key); replay its response after.

    Without the header ``call`` simply runs. ``table`` is the service's ``idempotency_keys``.
    """
    key = parse_key(request.headers.get(HEADER))
    if key is None:
        return await call()
    body = await request.body()
    method_path = f"{request.method} {request.url.path}"
    fingerprint = request_fingerprint(request.method, request.url.path, request.url.query, body)
    statements = _key_statements(engine.dialect, table)
    the_key = {"the_principal": principal.sub, "the_key": key}

    # Reserve in its own autocommitted statement: visible to concurrent retries at once.
    # Two rounds: the row we collided with may be deleted before we read it (that attempt
    # failed), in which case this request takes the key over.
    for _ in range(2):
        if await statements.reserve.run(engine, the_method_path=method_path, the_hash=fingerprint, **the_key):
            break
        existing = await statements.lookup.run(engine, **the_key)
        if existing:
            return _answer_retry(existing[0], fingerprint)
    else:
        raise _in_flight()

    try:
        response = await call()
    except Exception:
        await _release(engine, statements, the_key)
        raise
    if response.status_code >= 400 or not hasattr(response, "body"):
        # Failed (or streamed, which cannot be replayed): let the client retry with this key.
        await _release(engine, statements, the_key)
        return response
    await statements.store.run(
        engine,
        the_status=response.status_code,
        the_headers=_stored_headers(response),
        the_body=bytes(response.body),
        **the_key,
    )
    return response


@dataclass(frozen=True)
class _Statement:
    """Compiled once per table; run alone, autocommitted, on a pooled driver connection (a
    SQLAlchemy execution of each cost more than the create it guards: measured, benchmark 3)."""

    sql: str
    parameters: Parameters

    async def run(self, engine: AsyncEngine, **values: Any) -> list[Any]:
        return await fetch_alone(engine, self.sql, *driver_arguments(self.parameters, values))


@dataclass(frozen=True)
class _KeyStatements:
    reserve: _Statement
    lookup: _Statement
    store: _Statement
    release: _Statement


@functools.cache
def _key_statements(dialect: Dialect, table: Table) -> _KeyStatements:
    the_key = (table.c.principal == bindparam("the_principal")) & (table.c.key == bindparam("the_key"))
    reserve = (
        pg_insert(table)
        .values(
            principal=bindparam("the_principal"),
            key=bindparam("the_key"),
            method_path=bindparam("the_method_path"),
            request_hash=bindparam("the_hash"),
        )
        .on_conflict_do_nothing(index_elements=[table.c.principal, table.c.key])
        .returning(table.c.key)
    )
    lookup = select(
        table.c.request_hash, table.c.status_code, table.c.response_headers, table.c.response_body, table.c.created_at
    ).where(the_key)
    store = (
        update(table)
        .where(the_key)
        .values(
            status_code=bindparam("the_status"),
            response_headers=bindparam("the_headers"),
            response_body=bindparam("the_body"),
        )
    )
    release = delete(table).where(the_key & table.c.status_code.is_(None))
    return _KeyStatements(*(_Statement(*compiled_text(dialect, s)) for s in (reserve, lookup, store, release)))


def _answer_retry(existing: Any, fingerprint: str) -> Response:
    if existing["request_hash"] != fingerprint:
        raise Problem(
            422,
            "Idempotency-Key reused",
            f"This {HEADER} was already used for a different request; use a new key for a new request.",
            slug="idempotency-key-reused",
        )
    if existing["status_code"] is None:
        created_at = existing["created_at"]
        if created_at is not None and datetime.now(UTC) - created_at > STALE_AFTER:
            raise Problem(
                409,
                "Outcome unknown",
                "The first request with this key did not finish; check whether it took effect, "
                "then retry with a new key.",
                slug="idempotency-outcome-unknown",
            )
        raise _in_flight()
    return _replay(existing)


def _in_flight() -> Problem:
    return Problem(
        409,
        "Request in progress",
        f"A request with this {HEADER} is still being processed; retry shortly.",
        slug="idempotency-key-in-flight",
        headers={"Retry-After": "1"},
    )


async def _release(engine: AsyncEngine, statements: _KeyStatements, the_key: dict[str, str]) -> None:
    try:
        await statements.release.run(engine, **the_key)
    except Exception:
        log.exception("could not release an idempotency reservation; the key stays reserved")


async def purge_idempotency_keys(engine: AsyncEngine, table: Table, *, older_than: timedelta = RETENTION) -> int:
    """Delete keys older than ``older_than`` (24 h); returns how many were deleted."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(table).where(table.c.created_at < datetime.now(UTC) - older_than))
    return result.rowcount


class IdempotentRoute(APIRoute):
    """Route class that makes ``POST`` endpoints honour ``Idempotency-Key`` (see module docs).

    Needs ``app.state.engine`` and ``app.state.tables`` (the lifespan contract of
    ``shared.http.create_service_app``).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in (kwargs.get("methods") or ())}
        if "POST" in methods:
            extra = dict(kwargs.get("openapi_extra") or {})
            extra["parameters"] = [
                *extra.get("parameters", []),
                {
                    "name": HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Makes retries safe: the same key and body replay the first response "
                    "(422 for another body, 409 while the first is in flight). Keys last 24 h.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
                },
            ]
            kwargs["openapi_extra"] = extra
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def idempotent_handler(request: Request) -> Response:
            if request.method != "POST" or HEADER.lower() not in request.headers:
                return await handler(request)
            parse_key(request.headers.get(HEADER))
            try:
                principal = await authenticate_request(request)
            except (Problem, AuthError):
                # No valid token: the endpoint's own auth dependency answers.
                return await handler(request)
            state = request.app.state
            return await run_idempotent(
                request, principal, state.engine, state.tables.idempotency_keys, lambda: handler(request)
            )

        return idempotent_handler
