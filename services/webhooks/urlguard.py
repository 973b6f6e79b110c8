"""Where webhooks may go: URL rules at registration and address rules at every connect (SSRF).

A receiver URL must be ``https://`` (``http://`` only in development or with
``SALESLINE_WEBHOOKS_ALLOW_HTTP``), carry no ``user:password@`` and name a host. Its host
must not be, or resolve to, an address that is not public: loopback, private (RFC 1918),
shared (100.64/10), link-local (169.254/16, where cloud metadata lives), unique-local
(fc00::/7), unspecified, reserved, multicast or broadcast. IPv4 inside IPv6 is unwrapped
first (``::ffff:127.0.0.1``, ``::127.0.0.1``, 6to4 ``2002:7f00:1::``, NAT64
``64:ff9b::7f00:1``), and the legacy IPv4 spellings that ``inet_aton`` and the resolver
accept (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) are read as the address
they are. Networks in ``SALESLINE_WEBHOOKS_ALLOWED_NETWORKS`` are allowed anyway.

Registration checks what it can without trusting DNS: a name that does not resolve yet is
accepted. What counts is the connect: :class:`GuardedBackend` is the network backend of the
dispatcher's HTTP pool; it resolves the host itself, refuses the connection if any address is
not allowed (so a name with one public and one private address is refused, and a name that
changed its answer since registration, DNS rebinding, is caught), and connects to the
address it checked, never resolving twice. TLS still verifies the certificate against the
host name. Redirects are never followed (httpcore does not follow them), and no proxy from
the environment is used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.auto import AutoBackend

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_LEGACY_IPV4_RE = re.compile(r"[0-9a-fA-FxX.]+")


class UrlRefused(ValueError):
    """The URL or its address is not allowed; ``str()`` is safe to show the client."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class BlockedAddress(httpcore.ConnectError):
    """Raised at connect time: the host is, or resolves to, an address that is not allowed."""


class ResolutionFailed(httpcore.ConnectError):
    """The host name did not resolve."""


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form the resolver would accept; None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4_RE.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not receive webhooks, or None when it may."""
    inner = embedded_ipv4(address)
    effective: IPAddress = inner if inner is not None else address
    if any(a.version == net.version and a in net for a in (address, effective) for net in allowed):
        return None
    if effective.is_loopback:
        return "loopback"
    if effective.is_link_local:
        return "link-local"
    if effective.is_unspecified:
        return "unspecified"
    if effective.is_multicast:
        return "multicast"
    if isinstance(effective, ipaddress.IPv6Address) and effective in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    if effective.is_private:
        return "private"
    if not effective.is_global:
        return "reserved"
    return None


def split_url(url: str, *, http_allowed: bool) -> SplitResult:
    """Check the URL's shape (scheme, credentials, host, port); the address comes later."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.", code="url_too_long")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UrlRefused("The URL contains whitespace or control characters.", code="url_malformed")
    if not url.isascii():
        raise UrlRefused(
            "The URL must be ASCII: write the host in its xn-- (punycode) form and percent-encode the path.",
            code="url_malformed",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("The URL cannot be parsed.", code="url_malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("The URL must start with https://.", code="url_scheme")
    if scheme == "http" and not http_allowed:
        raise UrlRefused("The URL must use https:// (plain http is accepted only in development).", code="url_insecure")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(
            "The URL must not carry credentials (user:password@): requests are signed instead.",
            code="url_credentials",
        )
    if not parts.hostname:
        raise UrlRefused("The URL has no host.", code="url_malformed")
    if port == 0:
        raise UrlRefused("The URL's port must be 1-65535.", code="url_malformed")
    return parts


def _is_localhost_name(host: str) -> bool:
    host = host.rstrip(".").lower()
    return host == "localhost" or host.endswith(".localhost")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (``ResolutionFailed`` when none)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise ResolutionFailed(f"{host} does not resolve ({type(exc).__name__})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolutionFailed(f"{host} does not resolve")
    return addresses


def check_addresses(host: str, addresses: Iterable[IPAddress], allowed: Sequence[IPNetwork]) -> None:
    for address in addresses:
        reason = blocked_reason(address, allowed)
        if reason is not None:
            shown = host if host.strip("[]") == str(address) else f"{host} ({address})"
            raise BlockedAddress(f"{shown} is not a public address ({reason}); it may not receive webhooks")


async def check_receiver_url(url: str, *, http_allowed: bool, allowed: Sequence[IPNetwork]) -> str:
    """Registration-time check; returns the URL unchanged or raises :class:`UrlRefused`."""
    parts = split_url(url, http_allowed=http_allowed)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    literal = literal_address(host)
    try:
        if literal is not None:
            check_addresses(host, [literal], allowed)
        elif _is_localhost_name(host):
            check_addresses(host, [ipaddress.ip_address("127.0.0.1")], allowed)
        else:
            try:
                addresses = await resolve(host, port)
            except ResolutionFailed:
                return url  # may resolve later; the connect-time check decides then
            check_addresses(host, addresses, allowed)
    except BlockedAddress as exc:
        raise UrlRefused(
            f"{exc}. On-premises receivers on private addresses must be allow-listed by the operator "
            "(SALESLINE_WEBHOOKS_ALLOWED_NETWORKS).",
            code="url_address",
        ) from None
    return url


class GuardedBackend(AsyncNetworkBackend):
    """httpcore network backend that resolves, checks, and connects to the checked address."""

    def __init__(self, allowed: Sequence[IPNetwork], inner: AsyncNetworkBackend | None = None) -> None:
        self.allowed = tuple(allowed)
        self.inner = inner or AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        if _is_localhost_name(host):
            addresses: list[IPAddress] = [ipaddress.ip_address("127.0.0.1")]
        else:
            addresses = await resolve(host, port)
        check_addresses(host, addresses, self.allowed)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:  # noqa: ASYNC109
        raise BlockedAddress("unix sockets may not receive webhooks")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
