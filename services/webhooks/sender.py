"""One HTTP attempt: sign per Standard Webhooks, POST, and say what happened.

Headers (https://www.standardwebhooks.com): ``webhook-id`` (the delivery's id: the same on
every retry and replay, so receivers deduplicate), ``webhook-timestamp`` (Unix seconds, the
wall clock at sending; receivers reject it beyond ±5 min) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, signed by ``standardwebhooks`` itself;
during a secret rotation two signatures separated by a space), and ``traceparent`` when the event
carries one (W3C trace context: a new span in the event's trace). The body is the event's
CloudEvents envelope, ``Content-Type: application/cloudevents+json``.

HTTP is one httpcore connection pool per endpoint (subscription), each bounded to the
per-endpoint concurrency and kept alive between attempts, with
:class:`~services.webhooks.urlguard.GuardedBackend` as its network backend: every new
connection is checked against the address rules. Separate pools keep one endpoint's
connections out of another's way (and the pool's bookkeeping small); a pool idle for longer
than the keep-alive is closed. httpcore
follows no redirects and reads no proxy settings from the environment. Each attempt has one
overall deadline (15 s by default) on top of httpcore's per-operation timeouts, so a receiver
that trickles its answer cannot hold a slot longer. Only the first 2 KB of the response body
are read.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import httpcore
from standardwebhooks import Webhook

from services.webhooks.domain import Outcome
from services.webhooks.urlguard import (
    BlockedAddress,
    GuardedBackend,
    IPNetwork,
    ResolutionFailed,
    UrlRefused,
    split_url,
)
from shared.context import child_traceparent, envelope_traceparent
from shared.events import CONTENT_TYPE

USER_AGENT = "Salesline-Webhooks/1.0 (+https://www.standardwebhooks.com)"
KEEPALIVE_SECONDS = 30.0


class ErrorClass(StrEnum):
    HTTP_STATUS = "http_status"  # a response that is not 2xx (and not a redirect)
    REDIRECT = "redirect"  # 3xx: not followed
    TIMEOUT = "timeout"
    CONNECT = "connect"  # refused, unreachable, reset while connecting
    DNS = "dns"
    BLOCKED_ADDRESS = "blocked_address"  # SSRF rules refused the resolved address
    INSECURE_URL = "insecure_url"  # the URL no longer passes the URL rules (e.g. http outside development)
    TLS = "tls"
    PROTOCOL = "protocol"  # not a valid HTTP response
    NETWORK = "network"  # the connection broke mid-request
    OTHER = "other"


@dataclass
class _Pool:
    http: httpcore.AsyncConnectionPool
    busy: int = 0
    used: float = 0.0


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    latency_ms: int
    body_excerpt: str | None = None
    error: str | None = None  # a short description; never headers or secrets


def signature_headers(msg_id: str, body: str, secrets: Sequence[str | Webhook], sent_at: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers, one ``v1,`` signature per secret (or signer)."""
    signers = (secret if isinstance(secret, Webhook) else Webhook(secret) for secret in secrets)
    signatures = " ".join(signer.sign(msg_id, sent_at, body) for signer in signers)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
    }


def traceparent_header(body: str) -> str | None:
    """``traceparent`` for a request carrying ``body`` (a CloudEvents envelope): a new span in the
    event's trace, so the receiver's logs join it."""
    found = envelope_traceparent(body)
    return child_traceparent(found) if found else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _excerpt(data: bytes) -> str:
    # PostgreSQL text holds no NUL.
    return data.decode("utf-8", "replace").replace("\x00", "\ufffd")


def _classify(exc: BaseException) -> ErrorClass:
    if isinstance(exc, BlockedAddress):
        return ErrorClass.BLOCKED_ADDRESS
    if isinstance(exc, ResolutionFailed):
        return ErrorClass.DNS
    if isinstance(exc, TimeoutError | httpcore.TimeoutException):
        return ErrorClass.TIMEOUT
    if isinstance(exc, httpcore.ConnectError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLError) or "SSL" in str(exc) or "CERTIFICATE" in str(exc).upper():
            return ErrorClass.TLS
        return ErrorClass.CONNECT
    if isinstance(exc, httpcore.ProtocolError):
        return ErrorClass.PROTOCOL
    if isinstance(exc, httpcore.NetworkError | OSError):
        return ErrorClass.NETWORK
    return ErrorClass.OTHER


class Sender:
    def __init__(
        self,
        *,
        timeout: float,
        allowed: Sequence[IPNetwork],
        http_allowed: bool,
        max_connections: int = 8,
        excerpt_bytes: int = 2048,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.timeout = timeout
        self.http_allowed = http_allowed
        self.excerpt_bytes = excerpt_bytes
        self.max_connections = max_connections
        self.keepalive_seconds = keepalive_seconds
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._backend = GuardedBackend(allowed)
        self._pools: dict[Hashable, _Pool] = {}
        self._next_sweep = time.monotonic() + keepalive_seconds

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.http.aclose()

    def _pool(self, endpoint: Hashable) -> _Pool:
        pool = self._pools.get(endpoint)
        if pool is None:
            pool = self._pools[endpoint] = _Pool(
                httpcore.AsyncConnectionPool(
                    ssl_context=self._ssl_context,
                    max_connections=self.max_connections,
                    keepalive_expiry=self.keepalive_seconds,
                    retries=0,
                    network_backend=self._backend,
                )
            )
        return pool

    async def _sweep(self, now: float) -> None:
        """Close the pools of endpoints nothing was sent to for a keep-alive period."""
        self._next_sweep = now + self.keepalive_seconds
        idle = [key for key, pool in self._pools.items() if not pool.busy and now - pool.used > self.keepalive_seconds]
        for key in idle:
            await self._pools.pop(key).http.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, endpoint: Hashable = None) -> AttemptResult:
        """POST ``body`` to ``url`` through ``endpoint``'s pool (default: the URL's own);
        never raises for anything the receiver or network does."""
        started = time.monotonic()
        if started >= self._next_sweep:
            await self._sweep(started)
        pool = self._pool(endpoint if endpoint is not None else url)
        pool.busy += 1
        try:
            return await self._post(pool.http, url, body, headers, started)
        finally:
            pool.busy -= 1
            pool.used = time.monotonic()

    async def _post(
        self, http: httpcore.AsyncConnectionPool, url: str, body: bytes, headers: dict[str, str], started: float
    ) -> AttemptResult:
        try:
            parts = split_url(url, http_allowed=self.http_allowed)
        except UrlRefused as exc:
            return AttemptResult(Outcome(error_class=ErrorClass.INSECURE_URL), 0, error=str(exc))
        request_headers = [
            ("Host", parts.netloc),
            ("Content-Type", CONTENT_TYPE),
            ("User-Agent", USER_AGENT),
            *headers.items(),
        ]
        per_operation = {"connect": self.timeout, "read": self.timeout, "write": self.timeout, "pool": self.timeout}
        try:
            async with asyncio.timeout(self.timeout):
                async with http.stream(
                    "POST", url, headers=request_headers, content=body, extensions={"timeout": per_operation}
                ) as response:
                    excerpt = bytearray()
                    async for chunk in response.aiter_stream():
                        excerpt += chunk
                        if len(excerpt) >= self.excerpt_bytes:
                            break
                    status = response.status
                    retry_after = parse_retry_after(_header(response.headers, b"retry-after"))
        except Exception as exc:  # noqa: BLE001 - every failure is an outcome to record
            error_class = _classify(exc)
            message = str(exc) or type(exc).__name__
            if error_class is ErrorClass.TIMEOUT:
                message = f"no complete response within {self.timeout:g} s"
            return AttemptResult(
                Outcome(error_class=error_class), _elapsed_ms(started), error=f"{type(exc).__name__}: {message}"[:500]
            )
        latency = _elapsed_ms(started)
        if 200 <= status < 300:
            error_class = None
        elif 300 <= status < 400:
            error_class = ErrorClass.REDIRECT
        else:
            error_class = ErrorClass.HTTP_STATUS
        error = None
        if error_class is ErrorClass.REDIRECT:
            error = "redirects are not followed; register the final URL"
        elif error_class is not None:
            error = f"HTTP {status}"
        return AttemptResult(
            Outcome(status_code=status, error_class=error_class, retry_after=retry_after),
            latency,
            body_excerpt=_excerpt(bytes(excerpt[: self.excerpt_bytes])),
            error=error,
        )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
