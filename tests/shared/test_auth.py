"""Bearer JWT: dev HS256 tokens, OIDC/JWKS verification, 401/403 problems, the mint command."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import ADMIN, Authenticator, AuthError, Principal, mint_token, require_roles
from shared.errors import Problem
from tests.shared.conftest import bearer, http_settings, widget_body

ROOT = Path(__file__).resolve().parents[2]
WRONG_SECRET = "wrong-secret-of-sufficient-length-0123456789"
PROBLEM = "application/problem+json"


# -- over HTTP -------------------------------------------------------------------------------


async def test_missing_token_is_401_with_bearer_challenge(http_client: httpx.AsyncClient) -> None:
    response = await http_client.get("/v1/widgets")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "https://salesline.dev/problems/unauthorized"


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("Bearer not-a-jwt", "The token is invalid"),
        (
            "Bearer " + jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, WRONG_SECRET),
            "The token is invalid",
        ),
        ("Bearer " + jwt.encode({"sub": "x"}, http_settings().jwt_secret), "The token is invalid"),  # no exp
        ("Bearer " + jwt.encode({"exp": int(time.time()) + 60}, http_settings().jwt_secret), "The token is invalid"),
        (
            "Bearer " + jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "", algorithm="none"),
            "The token is invalid",
        ),
    ],
    ids=["garbage", "wrong-secret", "no-exp", "no-sub", "alg-none"],
)
async def test_invalid_token_is_401_invalid_token(
    http_client: httpx.AsyncClient, authorization: str, detail: str
) -> None:
    response = await http_client.get("/v1/widgets", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["detail"] == detail
    assert authorization.split(" ", 1)[1] not in response.text


async def test_expired_token_is_401(http_client: httpx.AsyncClient) -> None:
    response = await http_client.get("/v1/widgets", headers=bearer("rep-1", "sales_rep", ttl=-120))
    assert response.status_code == 401
    assert response.json()["detail"] == "The token has expired"


async def test_other_schemes_are_401(http_client: httpx.AsyncClient) -> None:
    response = await http_client.get("/v1/widgets", headers={"Authorization": "Basic cmVwOnB3"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_missing_role_is_403_and_admin_passes(http_client: httpx.AsyncClient) -> None:
    forbidden = await http_client.post("/v1/widgets", json=widget_body(), headers=bearer("fin-1", "finance"))
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == PROBLEM
    assert forbidden.json()["type"] == "https://salesline.dev/problems/forbidden"
    assert "sales_rep" in forbidden.json()["detail"]

    admin = await http_client.post("/v1/widgets", json=widget_body(), headers=bearer("root", ADMIN))
    assert admin.status_code == 201
    manager = await http_client.post("/v1/widgets", json=widget_body(), headers=bearer("m-1", "sales_manager"))
    assert manager.status_code == 201


def test_require_roles_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        require_roles("sales_wizard")


# -- development tokens ----------------------------------------------------------------------


async def test_dev_token_claims_become_the_principal() -> None:
    settings = http_settings()
    token = mint_token(settings, sub="rep-7", roles=["sales_rep", "sales_manager"], team="t1", region="east")
    principal = await Authenticator(settings).authenticate(token)
    assert principal == Principal(
        sub="rep-7", roles=frozenset({"sales_rep", "sales_manager"}), team="t1", region="east"
    )
    assert principal.claims["exp"] - principal.claims["iat"] == 3600
    assert principal.has_any_role("sales_manager") and not principal.has_any_role("finance")


async def test_issuer_and_audience_are_checked_when_configured() -> None:
    settings = http_settings(jwt_issuer="https://id.salesline.dev", jwt_audience="salesline-api")
    authenticator = Authenticator(settings)
    good = mint_token(settings, sub="rep-1", roles=["sales_rep"])
    assert (await authenticator.authenticate(good)).sub == "rep-1"
    no_aud = mint_token(http_settings(jwt_issuer="https://id.salesline.dev"), sub="rep-1", roles=["sales_rep"])
    with pytest.raises(AuthError):
        await authenticator.authenticate(no_aud)
    other_issuer = mint_token(
        http_settings(jwt_issuer="https://evil.example", jwt_audience="salesline-api"), sub="rep-1", roles=[]
    )
    with pytest.raises(AuthError):
        await authenticator.authenticate(other_issuer)


def test_mint_command_prints_a_token_signed_with_the_configured_secret() -> None:
    env = dict(os.environ, SALESLINE_JWT_SECRET="cli-test-secret-0123456789abcdef", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.auth",
            "mint",
            "--sub",
            "rep-1",
            "--roles",
            "sales_rep,sales_manager",
            "--team",
            "t1",
            "--region",
            "east",
            "--ttl",
            "120",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    token = result.stdout.strip()
    assert result.stderr == ""
    claims = jwt.decode(token, "cli-test-secret-0123456789abcdef", algorithms=["HS256"])
    assert claims["sub"] == "rep-1"
    assert claims["roles"] == ["sales_rep", "sales_manager"]
    assert (claims["team"], claims["region"]) == ("t1", "east")
    assert claims["exp"] - claims["iat"] == 120

    bad = subprocess.run(
        [sys.executable, "-m", "shared.auth", "mint", "--sub", "x", "--roles", "wizard"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "unknown roles" in bad.stderr and bad.stdout == ""


# -- OIDC / JWKS -----------------------------------------------------------------------------


class _Jwks:
    """A JWKS endpoint on 127.0.0.1 that counts its fetches."""

    def __init__(self, jwks: dict) -> None:
        self.body = json.dumps(jwks).encode()
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[_Jwks]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    server = _Jwks({"keys": [{**public, "kid": "key-1", "use": "sig", "alg": "RS256"}]})
    yield server
    server.stop()


def _oidc_token(key: rsa.RSAPrivateKey, *, kid: str = "key-1", **claims: object) -> str:
    now = int(time.time())
    payload = {
        "sub": "user-42",
        "iss": "https://id.example",
        "aud": "salesline",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["support_agent", "offline_access"]},
        "region": "north",
    }
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_signed_with(secret: bytes, claims: dict, *, kid: str) -> str:
    """An HS256 token whose HMAC key is ``secret`` (PyJWT refuses to make one with a PEM key)."""
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "." + _b64(json.dumps(claims).encode())
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def _oidc_settings(url: str):
    return http_settings(
        jwt_jwks_url=url, jwt_issuer="https://id.example", jwt_audience="salesline", jwt_algorithms=["RS256"]
    )


async def test_oidc_tokens_are_verified_with_cached_jwks_keys(jwks_server: _Jwks, rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = Authenticator(_oidc_settings(jwks_server.url))
    assert authenticator.uses_jwks
    principal = await authenticator.authenticate(_oidc_token(rsa_key))
    assert principal.sub == "user-42"
    assert principal.roles == frozenset({"support_agent", "offline_access"})
    assert principal.region == "north" and principal.team is None

    # Cached: more tokens (even concurrently), no more fetches, and none at all once the provider is gone.
    await asyncio.gather(*(authenticator.authenticate(_oidc_token(rsa_key, sub=f"u{i}")) for i in range(20)))
    jwks_server.stop()
    assert (await authenticator.authenticate(_oidc_token(rsa_key, sub="later"))).sub == "later"
    assert jwks_server.fetches == 1


async def test_oidc_rejects_wrong_audience_issuer_key_and_algorithm(
    jwks_server: _Jwks, rsa_key: rsa.RSAPrivateKey
) -> None:
    authenticator = Authenticator(_oidc_settings(jwks_server.url))
    with pytest.raises(AuthError):
        await authenticator.authenticate(_oidc_token(rsa_key, aud="another-api"))
    with pytest.raises(AuthError):
        await authenticator.authenticate(_oidc_token(rsa_key, iss="https://evil.example"))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthError):
        await authenticator.authenticate(_oidc_token(other_key))  # right kid, wrong signature
    with pytest.raises(AuthError, match="unknown key"):
        await authenticator.authenticate(_oidc_token(rsa_key, kid="key-unknown"))
    # The development secret means nothing in OIDC mode, nor does HS256 with the public key.
    with pytest.raises(AuthError):
        await authenticator.authenticate(mint_token(http_settings(), sub="rep-1", roles=["admin"]))
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = _hs256_signed_with(public_pem, {"sub": "x", "exp": int(time.time()) + 60}, kid="key-1")
    with pytest.raises(AuthError):
        await authenticator.authenticate(forged)


async def test_oidc_provider_unreachable_is_503_not_401() -> None:
    authenticator = Authenticator(_oidc_settings("http://127.0.0.1:1/jwks.json"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Problem) as raised:
        await authenticator.authenticate(_oidc_token(key))
    assert raised.value.status == 503
