"""RFC 9457 problem details (``application/problem+json``) for every error a service returns.

Raise :class:`Problem` anywhere in request code (routers, dependencies, handlers)::

    raise Problem(404, "Order not found", slug="not-found")
    raise Problem(409, "Order already approved", detail="...", order_id=str(order.id))

:func:`install_problem_handlers` maps everything else to a problem too: request validation
(422, with an ``errors`` list of field problems, or 400 for a body that is not JSON), Starlette
HTTP errors (404, 405, 413, ...), :class:`shared.domain.DomainError` (its ``status``, ``title``,
``slug`` and ``extensions`` members) and any unexpected exception (a 500 with a generic detail;
the exception is logged with the request id and never echoed to the client).

Every problem carries ``type`` (``https://salesline.dev/problems/<slug>``), ``title``,
``status``, ``detail`` when there is one, ``instance`` (the request path) and ``request_id``.
Field problems never echo the rejected input: it may be huge or a secret.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.context import current_context
from shared.domain import DomainError

log = logging.getLogger("salesline.http")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://salesline.dev/problems/"

# Keep problem documents small whatever the client sent.
MAX_FIELD_ERRORS = 50
MAX_MESSAGE_LENGTH = 200
MAX_LOC_PART_LENGTH = 64

_SLUG_RE = re.compile(r"[^a-z0-9]+")
# Problem members a caller may not override through ``**extra``.
_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "request_id", "errors"})


def slugify(text: str) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-") or "problem"


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_BASE + slug


# RFC 9110 renamed these; Python 3.11's HTTPStatus still has the old phrases.
_RFC9110_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def status_title(status: int) -> str:
    if status in _RFC9110_TITLES:
        return _RFC9110_TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(Exception):
    """An error the client should see as an RFC 9457 problem document.

    ``slug`` names the problem type (defaults to the slugified title); ``errors`` lists field
    problems (``{"pointer": "#/lines/0/price", "message": "..."}``); ``headers`` are added to
    the response (``WWW-Authenticate``, ``Retry-After``, ``ETag``, ...); any other keyword
    becomes an extension member of the document.
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        slug: str | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.status = status
        self.title = title or status_title(status)
        self.detail = detail
        self.slug = slug or slugify(self.title)
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers) if headers else {}
        clash = _RESERVED.intersection(extra)
        if clash:
            raise TypeError(f"problem extension members clash with standard members: {sorted(clash)}")
        self.extra = extra
        super().__init__(f"{status} {self.title}" + (f": {detail}" if detail else ""))

    @property
    def type(self) -> str:
        return problem_type(self.slug)

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance is not None:
            body["instance"] = instance
        request_id = current_context.get().request_id
        if request_id:
            body["request_id"] = request_id
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def to_response(self, instance: str | None = None) -> Response:
        return problem_response(self.to_dict(instance), self.status, self.headers)


def problem_response(body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None) -> Response:
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return Response(content, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


# -- OpenAPI ---------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    """One rejected field or parameter (no input value is echoed)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="Where the problem is, as FastAPI/pydantic locate it")
    pointer: str | None = Field(None, description="JSON Pointer into the request body (RFC 6901)")
    parameter: str | None = Field(None, description="Name of the query, path or header parameter")
    message: str
    code: str = Field(description="Machine-readable reason, e.g. `missing`, `int_parsing`")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, served as `application/problem+json`."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(examples=["https://salesline.dev/problems/validation-failed"])
    title: str = Field(examples=["Validation failed"])
    status: int = Field(examples=[422])
    detail: str | None = None
    instance: str | None = Field(None, examples=["/v1/orders"])
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, invalid or expired bearer token",
    403: "The caller lacks a required role",
    404: "Not found (or not visible to the caller)",
    405: "Method not allowed",
    409: "Conflict with the current state (or a concurrent request with the same Idempotency-Key)",
    412: "If-Match does not match the current ETag",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed, or Idempotency-Key reused with another request",
    428: "If-Match is required",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting problem documents for these statuses.

    ``create_service_app`` moves them to the ``application/problem+json`` media type in the
    OpenAPI document, replaces FastAPI's default 422 schema, and adds 401/403 to every route
    that requires a bearer token.
    """
    return {
        status: {"model": ProblemDetails, "description": _DESCRIPTIONS.get(status, status_title(status))}
        for status in statuses
    }


# -- handlers --------------------------------------------------------------------------------


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_LENGTH else text[: MAX_MESSAGE_LENGTH - 1] + "…"


def _loc_part(part: Any) -> str | int:
    if isinstance(part, int):
        return part
    text = str(part)
    return text if len(text) <= MAX_LOC_PART_LENGTH else text[: MAX_LOC_PART_LENGTH - 1] + "…"


def _json_pointer(parts: Iterable[str | int]) -> str:
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def field_problems(raw_errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors as field problems: location, message, code; never the input."""
    problems: list[dict[str, Any]] = []
    for error in raw_errors[:MAX_FIELD_ERRORS]:
        loc = [_loc_part(p) for p in error.get("loc", ())]
        item: dict[str, Any] = {"loc": loc}
        if loc and loc[0] == "body":
            item["pointer"] = _json_pointer(loc[1:])
        elif len(loc) >= 2 and loc[0] in ("query", "path", "header", "cookie"):
            item["parameter"] = loc[1]
        item["message"] = _short(str(error.get("msg", "Invalid value")))
        item["code"] = str(error.get("type", "invalid"))
        problems.append(item)
    return problems


def _instance(request: Request) -> str:
    return request.url.path


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.to_response(_instance(request))


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        problem = Problem(
            400,
            "Malformed JSON",
            "The request body is not valid JSON.",
            slug="malformed-json",
        )
    else:
        problem = Problem(
            422,
            "Validation failed",
            f"The request has {len(errors)} invalid field(s); see `errors`.",
            slug="validation-failed",
            errors=field_problems(errors),
        )
    return problem.to_response(_instance(request))


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    title = status_title(status)
    # Starlette fills a missing detail with the reason phrase; don't repeat it.
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title and status < 500 else None
    headers = dict(exc.headers) if exc.headers else None
    if status in (204, 304) or status < 200:
        return Response(status_code=status, headers=headers)
    return Problem(status, title, detail, headers=headers).to_response(_instance(request))


async def _domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    slug = getattr(exc, "slug", None) or slugify(exc.title)
    detail = str(exc) or None
    # A domain error may name figures the client needs (e.g. the amount still outstanding).
    extensions = getattr(exc, "extensions", None) or {}
    return Problem(exc.status, exc.title, detail, slug=slug, **extensions).to_response(_instance(request))


def internal_error_response(request_path: str | None) -> Response:
    """The 500 every unexpected exception becomes: nothing of the exception leaks."""
    return Problem(
        500,
        "Internal Server Error",
        "An unexpected error occurred. Quote the request id when reporting it.",
        slug="internal-error",
    ).to_response(request_path)


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return internal_error_response(_instance(request))


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error response of ``app`` an RFC 9457 problem document."""
    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
