"""Secure by default and never a 500: every endpoint checks who is asking, another owner's
object is a 404, bad input is a 4xx problem that writes nothing, and each service's database
role can touch only its own schema."""

from __future__ import annotations

import re
import uuid

import asyncpg
import pytest

from shared.migrate import SERVICES
from tests.conftest import System, auth, service_module, settings_for
from tests.helpers import contract_payload

REP = auth("rep-1", "sales_rep")
OTHER_REP = auth("rep-2", "sales_rep")
PUBLIC = {"/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json"}


@pytest.mark.parametrize("service", SERVICES)
async def test_every_endpoint_requires_a_token(system: System, service: str) -> None:
    client = await system.client(service)
    app = service_module(service, "main").create_app(settings_for(service))
    checked = 0
    for route_path, operations in app.openapi()["paths"].items():
        if route_path in PUBLIC:
            continue
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route_path)
        for method, operation in operations.items():
            if operation.get("x-public"):  # explicitly public, and says why (e.g. a customer's secret link)
                continue
            response = await client.request(method.upper(), path)
            assert response.status_code == 401, (method, route_path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["www-authenticate"].lower().startswith("bearer")
            checked += 1
    assert checked > 0


async def test_another_owners_contract_is_not_found(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    mine = (await contracts.post("/v1/contracts", json=contract_payload("mine"), headers=REP)).json()
    theirs = await contracts.get(f"/v1/contracts/{mine['id']}", headers=OTHER_REP)
    assert theirs.status_code == 404
    for method, action in (("POST", "submit"), ("GET", "signing-links"), ("GET", "documents"), ("GET", "documents/1")):
        response = await contracts.request(method, f"/v1/contracts/{mine['id']}/{action}", headers=OTHER_REP)
        assert response.status_code == 404, (action, response.text)
    patched = await contracts.patch(
        f"/v1/contracts/{mine['id']}", json={"payment_terms": "x"}, headers={**OTHER_REP, "If-Match": '"1"'}
    )
    assert patched.status_code == 404
    assert (await contracts.get("/v1/contracts", headers=OTHER_REP)).json()["items"] == []
    assert (await contracts.get(f"/v1/contracts/{mine['id']}", headers=REP)).status_code == 200
    manager = auth("manager-1", "sales_manager")
    assert (await contracts.get(f"/v1/contracts/{mine['id']}", headers=manager)).status_code == 200


async def test_a_role_without_access_gets_403(system: System) -> None:
    contracts = await system.client("contracts")
    response = await contracts.post("/v1/contracts", json=contract_payload(), headers=auth("agent", "support_agent"))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    history = await system.client("webhooks")
    assert (await history.get("/v1/events", headers=REP)).status_code == 403


BAD_BODIES = {
    "malformed JSON": b'{"customer_id": "x", ',
    "wrong types": b'{"customer_id": 12, "customer_name": ["x"], "lines": "many"}',
    "NUL byte in a string": contract_payload("nul\u0000byte"),
    "integer past 2^63": contract_payload(
        lines=[{"sku": "A", "description": "a", "quantity": "1", "unit_price": "1.00", "warranty_months": 2**64}]
    ),
    "unknown field": {**contract_payload(), "is_admin": True},
    "float money": contract_payload(lines=[{"sku": "A", "description": "a", "quantity": "1", "unit_price": 0.1}]),
    "unknown currency": contract_payload(currency="XYZ"),
    "no lines": contract_payload(lines=[]),
    "not an object": b"[1, 2, 3]",
    "empty body": b"",
}


@pytest.mark.parametrize("case", BAD_BODIES)
async def test_bad_input_is_a_4xx_problem_and_writes_nothing(
    system: System, clean_db: asyncpg.Connection, case: str
) -> None:
    contracts = await system.client("contracts")
    body = BAD_BODIES[case]
    if isinstance(body, bytes):
        response = await contracts.post(
            "/v1/contracts", content=body, headers={**REP, "Content-Type": "application/json"}
        )
    else:
        response = await contracts.post("/v1/contracts", json=body, headers=REP)
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == response.status_code and problem["title"] and problem["type"]
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.contracts") == 0
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.outbox") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic cmVwOnB3"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
    ids=["missing", "garbage", "basic", "huge"],
)
async def test_missing_or_invalid_tokens_are_401_and_write_nothing(
    system: System, clean_db: asyncpg.Connection, headers: dict
) -> None:
    contracts = await system.client("contracts")
    response = await contracts.post("/v1/contracts", json=contract_payload(), headers=headers)
    assert response.status_code == 401
    assert "x" * 100 not in response.text  # the token is never echoed
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.contracts") == 0


@pytest.mark.parametrize(
    "path",
    ["/v1/contracts/not-a-uuid", "/v1/contracts?limit=0", "/v1/contracts?limit=100000", "/v1/contracts?cursor=zzz"],
)
async def test_bad_paths_and_queries_are_4xx_problems(system: System, path: str) -> None:
    response = await (await system.client("contracts")).get(path, headers=REP)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_each_service_role_can_only_touch_its_own_schema(clean_db: asyncpg.Connection) -> None:
    orders = settings_for("orders")
    conn = await asyncpg.connect(orders.database_url(driver="postgresql"))
    try:
        assert await conn.fetchval("SELECT count(*) FROM orders.orders") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM contracts.contracts")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.sneaky (id int)")
    finally:
        await conn.close()
