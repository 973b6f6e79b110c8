"""Bearer JWT authentication and role checks (DESIGN.md section 5).

Two modes, chosen by settings:

- development/test: HS256 tokens signed with ``settings.jwt_secret`` (``SALESLINE_JWT_SECRET``),
  minted by ``python -m shared.auth mint --sub rep-1 --roles sales_rep[,sales_manager]
  [--team t1] [--region east] [--ttl 3600]``;
- production: an OIDC provider's tokens, verified with the keys of ``settings.jwt_jwks_url``
  (asymmetric algorithms only, so an HS256 token signed with a public key is refused) plus
  ``jwt_issuer`` and ``jwt_audience`` when set.

Routers depend on :func:`current_principal` (any valid token) or :func:`require_roles`::

    @router.post("/v1/orders", ...)
    async def create_order(..., principal: Principal = Depends(require_roles(SALES_REP, SALES_MANAGER))):

A missing, malformed, invalid or expired token is a 401 problem with ``WWW-Authenticate:
Bearer``; a missing role a 403 problem; ``admin`` passes every role check. Claims used:
``sub``, ``roles`` (a list or a space-separated string; Keycloak's ``realm_access.roles`` as
a fallback), optional ``team`` and ``region``.

Per request cost: a verified token is remembered until it expires (at most 60 s), so a client's
repeated token costs a dict lookup; verification itself is pure CPU for HS256 (~35 us, no
I/O); JWKS keys are cached by key id and fetched in a worker thread only on a miss
(PyJWKClient's own cooldown stops unknown key ids from hammering the provider). The role
check is the same dependency as the authentication (one level of dependency resolution).
Tokens and secrets are never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from fastapi import Request
from fastapi.security import HTTPBearer

from shared.config import ServiceSettings
from shared.errors import Problem

log = logging.getLogger("salesline.auth")

SALES_REP = "sales_rep"
SALES_MANAGER = "sales_manager"
REGIONAL_DIRECTOR = "regional_director"
MARKETING_DIRECTOR = "marketing_director"
LEGAL = "legal"
FINANCE = "finance"
SUPPORT_AGENT = "support_agent"
SUPPORT_LEAD = "support_lead"
ADMIN = "admin"
INTEGRATION = "integration"  # ERP machine clients

ROLES: tuple[str, ...] = (
    SALES_REP,
    SALES_MANAGER,
    REGIONAL_DIRECTOR,
    MARKETING_DIRECTOR,
    LEGAL,
    FINANCE,
    SUPPORT_AGENT,
    SUPPORT_LEAD,
    ADMIN,
    INTEGRATION,
)

# Clock skew tolerated on exp/nbf/iat.
LEEWAY_SECONDS = 30
# Signing keys are re-resolved after this long, so a revoked key stops working.
JWKS_KEY_TTL_SECONDS = 300
# Verified tokens are remembered (until they expire, at most this long): a client sends the
# same token on every request, and verifying it again costs more than the rest of the
# request's auth. Bounded, oldest first out.
TOKEN_CACHE_SECONDS = 60
TOKEN_CACHE_SIZE = 10_000
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject, roles and scoping claims."""

    sub: str
    roles: frozenset[str] = frozenset()
    team: str | None = None
    region: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def has_any_role(self, *roles: str) -> bool:
        """True if the principal holds one of ``roles`` (``admin`` holds them all)."""
        return self.is_admin or not self.roles.isdisjoint(roles)


class AuthError(Exception):
    """The token is missing or not acceptable; ``str()`` is safe to show the client."""


def _roles_from(claims: Mapping[str, Any]) -> frozenset[str]:
    roles = claims.get("roles")
    if roles is None:
        realm_access = claims.get("realm_access")
        if isinstance(realm_access, Mapping):
            roles = realm_access.get("roles")
    if isinstance(roles, str):
        roles = roles.split()
    if not isinstance(roles, list | tuple):
        return frozenset()
    return frozenset(r for r in roles if isinstance(r, str))


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise AuthError("The token has no usable subject")
    return Principal(
        sub=sub,
        roles=_roles_from(claims),
        team=_optional_str(claims, "team"),
        region=_optional_str(claims, "region"),
        claims=dict(claims),
    )


class Authenticator:
    """Verifies bearer tokens according to the service settings (one per app)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self._options: dict[str, Any] = {"require": ["exp", "sub"], "verify_aud": self.audience is not None}
        self._jwks: jwt.PyJWKClient | None = None
        self._keys: dict[str, tuple[jwt.PyJWK, float]] = {}
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._key_lock = asyncio.Lock()
        if settings.jwt_jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, lifespan=JWKS_KEY_TTL_SECONDS, timeout=5)
            self.algorithms = [a for a in settings.jwt_algorithms if a in ASYMMETRIC_ALGORITHMS] or list(
                ASYMMETRIC_ALGORITHMS
            )
            self._secret: bytes | None = None
        else:
            self.algorithms = [a for a in settings.jwt_algorithms if a.startswith("HS")] or ["HS256"]
            self._secret = settings.jwt_secret.encode()
            if len(self._secret) < 32:
                log.warning("SALESLINE_JWT_SECRET is shorter than 32 bytes: too weak for HS256")

    @property
    def uses_jwks(self) -> bool:
        return self._jwks is not None

    async def authenticate(self, token: str) -> Principal:
        """The principal of a valid token; :class:`AuthError` otherwise."""
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            if now < cached[1]:
                return cached[0]
            del self._verified[token]
        principal = await self._verify(token)
        expires = principal.claims.get("exp")
        if isinstance(expires, int | float):
            if len(self._verified) >= TOKEN_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (principal, min(float(expires), now + TOKEN_CACHE_SECONDS))
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            key: Any
            algorithms = self.algorithms
            if self._jwks is None:
                key = self._secret
            else:
                jwk = await self._signing_key(token)
                key = jwk
                if jwk.algorithm_name not in algorithms:
                    raise AuthError("The token is signed with an algorithm this service does not accept")
                algorithms = [jwk.algorithm_name]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options=self._options,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("The token has expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("The token is invalid") from exc
        return principal_from_claims(claims)

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise AuthError("The token is invalid") from exc
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise AuthError("The token has no key id")
        now = time.monotonic()
        cached = self._keys.get(kid)
        if cached is not None and now - cached[1] < JWKS_KEY_TTL_SECONDS:
            return cached[0]
        assert self._jwks is not None
        async with self._key_lock:
            cached = self._keys.get(kid)
            if cached is not None and now - cached[1] < JWKS_KEY_TTL_SECONDS:
                return cached[0]
            try:
                # urllib under the hood: keep the event loop free while it fetches.
                jwk = await asyncio.to_thread(self._jwks.get_signing_key, kid)
            except jwt.PyJWKClientConnectionError as exc:
                log.warning("JWKS endpoint unreachable (%s)", type(exc).__name__)
                raise Problem(
                    503,
                    "Authentication unavailable",
                    "The identity provider's keys cannot be fetched; retry shortly.",
                    slug="auth-unavailable",
                    headers={"Retry-After": "5"},
                ) from exc
            except jwt.PyJWTError as exc:
                raise AuthError("The token is signed with an unknown key") from exc
            if len(self._keys) > 64:
                self._keys.clear()
            self._keys[kid] = (jwk, time.monotonic())
            return jwk


# -- FastAPI dependencies --------------------------------------------------------------------


def _unauthorized(message: str, *, invalid: bool) -> Problem:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return Problem(401, "Unauthorized", message, slug="unauthorized", headers={"WWW-Authenticate": challenge})


def get_authenticator(request: Request) -> Authenticator:
    state = request.app.state
    authenticator = getattr(state, "authenticator", None)
    if authenticator is None:
        authenticator = state.authenticator = Authenticator(state.settings)
    return authenticator


async def authenticate_request(request: Request) -> Principal:
    """The request's principal (cached on ``request.state``), or a 401 problem.

    Used by the dependencies below and by the idempotency layer, which needs the principal
    before the route's own dependencies run.
    """
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("A bearer token is required.", invalid=False)
    try:
        principal = await get_authenticator(request).authenticate(token)
    except AuthError as exc:
        raise _unauthorized(str(exc), invalid=True) from None
    request.state.principal = principal
    return principal


class BearerPrincipal(HTTPBearer):
    """Dependency: the authenticated caller, optionally holding one of ``roles``.

    A subclass of FastAPI's ``HTTPBearer`` so OpenAPI shows the ``bearerAuth`` scheme (the
    Authorize button, a lock on every protected route), yet one dependency per route: nested
    dependencies cost measurable time per request.
    """

    def __init__(self, roles: frozenset[str] | None = None) -> None:
        super().__init__(
            bearerFormat="JWT",
            scheme_name="bearerAuth",
            description="A JWT from the identity provider (locally: `python -m shared.auth mint ...`).",
            auto_error=False,
        )
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await authenticate_request(request)
        if self.roles is None or principal.is_admin or not principal.roles.isdisjoint(self.roles):
            return principal
        raise Problem(
            403,
            "Forbidden",
            "This operation needs one of the roles: " + ", ".join(sorted(self.roles)) + ".",
            slug="forbidden",
        )


current_principal = BearerPrincipal()
"""Dependency: any authenticated caller (401 problem otherwise)."""


def require_roles(*roles: str) -> BearerPrincipal:
    """Dependency: the caller, if they hold one of ``roles`` (403 problem otherwise; ``admin`` passes)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    return BearerPrincipal(frozenset(roles))


# -- development tokens ----------------------------------------------------------------------


def mint_token(
    settings: ServiceSettings,
    *,
    sub: str,
    roles: Sequence[str],
    team: str | None = None,
    region: str | None = None,
    ttl: int = 3600,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A token signed with the development secret (HS256), for local use and tests."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}; known: {', '.join(ROLES)}")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "roles": list(roles), "iat": now, "nbf": now, "exp": now + ttl}
    if team:
        claims["team"] = team
    if region:
        claims["region"] = region
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if extra:
        claims.update(extra)
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.auth", description="Salesline development tokens")
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="print a token signed with SALESLINE_JWT_SECRET")
    mint.add_argument("--sub", required=True)
    mint.add_argument("--roles", required=True, help="comma-separated: " + ",".join(ROLES))
    mint.add_argument("--team")
    mint.add_argument("--region")
    mint.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    args = parser.parse_args(argv)

    settings = ServiceSettings()
    if settings.environment == "production":
        parser.error("refusing to mint development tokens in production")
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    try:
        token = mint_token(settings, sub=args.sub, roles=roles, team=args.team, region=args.region, ttl=args.ttl)
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
