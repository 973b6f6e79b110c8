"""The subscriptions API: who may use it, the secret shown once and stored encrypted, URL and
pattern checks (SSRF included), optimistic concurrency, rotation, deletion."""

from __future__ import annotations

import logging
import uuid

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from services.webhooks.config import WebhooksSettings
from services.webhooks.main import create_app
from tests.conftest import auth
from tests.webhooks.conftest import ADMIN, ERP, OTHER_ERP, strict, subscribe

pytestmark = pytest.mark.usefixtures("clean_db")


async def test_create_shows_the_secret_once_and_stores_it_encrypted(
    api: httpx.AsyncClient, clean_db: asyncpg.Connection
) -> None:
    created = await subscribe(
        api, "https://erp.example.com/hooks", event_types=["order.*", "contract.signed.v1"], description="ERP"
    )
    secret = created["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)  # a Standard Webhooks library accepts it
    assert created["event_types"] == ["order.*", "contract.signed.v1"]
    assert created["status"] == "active" and created["owner_id"] == "erp-1"

    read = await api.get(f"/v1/webhook-subscriptions/{created['id']}", headers=ERP)
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    assert "secret" not in read.json() and secret not in read.text
    listed = await api.get("/v1/webhook-subscriptions", headers=ERP)
    assert [s["id"] for s in listed.json()["items"]] == [created["id"]] and secret not in listed.text

    stored = await clean_db.fetchrow("SELECT * FROM webhooks.subscriptions")
    assert secret not in str(dict(stored))
    assert secret[6:] not in str(dict(stored))


async def test_a_retried_create_returns_the_same_secret_without_keeping_it_in_clear(
    api: httpx.AsyncClient, clean_db: asyncpg.Connection
) -> None:
    body = {"url": "https://erp.example.com/hooks", "event_types": ["*"]}
    headers = {**ERP, "Idempotency-Key": "create-1"}
    first = await api.post("/v1/webhook-subscriptions", json=body, headers=headers)
    again = await api.post("/v1/webhook-subscriptions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.subscriptions") == 1
    kept = await clean_db.fetchval("SELECT response_body FROM webhooks.idempotency_keys")
    assert first.json()["secret"].encode() not in kept and b'"secret":"sealed:' in kept


async def test_the_secret_never_reaches_the_logs(api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        created = await subscribe(api, "https://erp.example.com/hooks")
        rotated = await api.post(f"/v1/webhook-subscriptions/{created['id']}/rotate-secret", headers=ERP)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert created["secret"] not in logged and rotated.json()["secret"] not in logged


@pytest.mark.parametrize(
    "headers", [auth("rep-1", "sales_rep"), auth("agent-1", "support_agent"), auth("fin-1", "finance")]
)
async def test_only_integration_clients_and_admins_may_subscribe(api: httpx.AsyncClient, headers: dict) -> None:
    response = await api.post(
        "/v1/webhook-subscriptions", json={"url": "https://erp.example.com/", "event_types": ["*"]}, headers=headers
    )
    assert response.status_code == 403
    assert (await api.get("/v1/webhook-subscriptions", headers=headers)).status_code == 403


async def test_another_clients_subscription_is_not_found_but_admin_sees_it(api: httpx.AsyncClient) -> None:
    mine = await subscribe(api, "https://erp.example.com/hooks")
    path = f"/v1/webhook-subscriptions/{mine['id']}"
    assert (await api.get(path, headers=OTHER_ERP)).status_code == 404
    assert (await api.patch(path, json={"active": False}, headers=OTHER_ERP)).status_code == 404
    assert (await api.delete(path, headers=OTHER_ERP)).status_code == 404
    assert (await api.post(f"{path}/rotate-secret", headers=OTHER_ERP)).status_code == 404
    assert (await api.post(f"{path}/ping", headers=OTHER_ERP)).status_code == 404
    assert (await api.get("/v1/webhook-subscriptions", headers=OTHER_ERP)).json()["items"] == []
    assert (await api.get(path, headers=ADMIN)).status_code == 200
    deliveries = await api.get(f"/v1/webhook-deliveries?subscription_id={mine['id']}", headers=OTHER_ERP)
    assert deliveries.json()["items"] == []


@pytest.mark.parametrize(
    ("patterns", "ok"),
    [
        (["order.*"], True),
        (["order.created.*"], True),
        (["*"], True),
        (["contract.signed.v1", "order.created.v1"], True),
        (["contract.signd.v1"], False),  # typo: not in the catalog
        (["order"], False),
        (["order*"], False),
        (["*.created.v1"], False),
        (["Order.*"], False),
        ([], False),
        (["order.*"] * 3, True),  # duplicates collapse
        ([f"x{i}.*" for i in range(51)], False),
    ],
)
async def test_event_type_patterns_are_checked(api: httpx.AsyncClient, patterns: list[str], ok: bool) -> None:
    response = await api.post(
        "/v1/webhook-subscriptions", json={"url": "https://erp.example.com/", "event_types": patterns}, headers=ERP
    )
    assert response.status_code == (201 if ok else 422), response.text
    if not ok:
        assert response.headers["content-type"].startswith("application/problem+json")


SSRF_HOSTS = [
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "[::ffff:127.0.0.1]",
    "[::1]",
    "[::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::]",
    "localhost",
    "api.localhost",
    "169.254.169.254",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.10",
    "100.64.0.1",
    "[fd12:3456::1]",
    "[fe80::1]",
    "0.0.0.0",
    "224.0.0.1",
]


@pytest.fixture
async def strict_api(settings: WebhooksSettings, clean_db) -> httpx.AsyncClient:
    """The API without the test allow-list."""
    app = create_app(strict(settings))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks.test") as c:
            yield c


@pytest.mark.parametrize("host", SSRF_HOSTS)
async def test_every_non_public_address_form_is_refused_at_registration(
    strict_api: httpx.AsyncClient, clean_db: asyncpg.Connection, host: str
) -> None:
    for scheme in ("https", "http"):
        response = await strict_api.post(
            "/v1/webhook-subscriptions",
            json={"url": f"{scheme}://{host}:8443/hooks", "event_types": ["*"]},
            headers=ERP,
        )
        assert response.status_code == 422, (host, response.text)
        assert response.json()["type"].endswith("webhook-url-refused")
        assert "not a public address" in response.json()["detail"]
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.subscriptions") == 0


async def test_the_allow_list_admits_only_its_networks(api: httpx.AsyncClient) -> None:
    # The test configuration allow-lists 127.0.0.0/8, in every spelling; nothing else.
    for host in ("127.0.0.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]", "localhost"):
        await subscribe(api, f"http://{host}:9/hooks")
    for host in ("169.254.169.254", "10.0.0.5", "[::1]"):
        response = await api.post(
            "/v1/webhook-subscriptions", json={"url": f"https://{host}/", "event_types": ["*"]}, headers=ERP
        )
        assert response.status_code == 422, host


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://erp.example.com/hooks", "plain http"),
        ("ftp://erp.example.com/hooks", "https://"),
        ("https://user:pw@erp.example.com/hooks", "credentials"),
        ("https:///hooks", "no host"),
        ("https://erp.example.com:0/", "port"),
        ("https://erp.example.com:99999/", "cannot be parsed"),
        ("https://erp.exa mple.com/", "whitespace"),
        ("erp.example.com/hooks", "https://"),
        ("https://例子.测试/hooks", "punycode"),
        ("https://erp.example.com/bestellungen/größe", "percent-encode"),
    ],
)
async def test_url_rules(strict_api: httpx.AsyncClient, settings: WebhooksSettings, url: str, code: str) -> None:
    app = create_app(strict(settings, allow_http=False))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w.test") as client:
            response = await client.post(
                "/v1/webhook-subscriptions", json={"url": url, "event_types": ["*"]}, headers=ERP
            )
    assert response.status_code == 422, response.text
    assert code in response.json()["detail"]


async def test_update_checks_if_match_and_the_new_url(api: httpx.AsyncClient, strict_api: httpx.AsyncClient) -> None:
    created = await subscribe(strict_api, "https://erp.example.com/hooks", description="first")
    path = f"/v1/webhook-subscriptions/{created['id']}"
    stale = await strict_api.patch(path, json={"description": "x"}, headers={**ERP, "If-Match": '"7"'})
    assert stale.status_code == 412
    changed = await strict_api.patch(
        path, json={"event_types": ["order.*"], "description": None}, headers={**ERP, "If-Match": '"1"'}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["order.*"] and changed.json()["description"] is None
    assert changed.headers["etag"] == '"2"'
    refused = await strict_api.patch(path, json={"url": "https://169.254.169.254/latest/meta-data"}, headers=ERP)
    assert refused.status_code == 422
    assert (await strict_api.get(path, headers=ERP)).json()["url"] == "https://erp.example.com/hooks"
    unknown = await strict_api.patch(path, json={"colour": "red"}, headers=ERP)
    assert unknown.status_code == 422


async def test_deactivate_reactivate_and_delete(api: httpx.AsyncClient, clean_db: asyncpg.Connection) -> None:
    created = await subscribe(api, "https://erp.example.com/hooks")
    path = f"/v1/webhook-subscriptions/{created['id']}"
    paused = await api.patch(path, json={"active": False}, headers=ERP)
    assert paused.json()["status"] == "inactive"
    assert (await api.get("/v1/webhook-subscriptions?active=true", headers=ERP)).json()["items"] == []
    resumed = await api.patch(path, json={"active": True}, headers=ERP)
    assert resumed.json()["status"] == "active"
    assert (await api.delete(path, headers={**ERP, "If-Match": '"1"'})).status_code == 412
    assert (await api.delete(path, headers=ERP)).status_code == 204
    assert (await api.get(path, headers=ERP)).status_code == 404
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.subscriptions") == 0


async def test_rotation_returns_a_new_secret_once_with_an_overlap(api: httpx.AsyncClient) -> None:
    created = await subscribe(api, "https://erp.example.com/hooks")
    path = f"/v1/webhook-subscriptions/{created['id']}"
    rotated = await api.post(f"{path}/rotate-secret", json={"overlap_seconds": 3600}, headers=ERP)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["previous_secret_expires_at"] is not None
    read = (await api.get(path, headers=ERP)).json()
    assert read["previous_secret_expires_at"] == body["previous_secret_expires_at"]
    assert body["secret"] not in str(read)
    no_overlap = await api.post(f"{path}/rotate-secret", json={"overlap_seconds": 0}, headers=ERP)
    assert no_overlap.json()["previous_secret_expires_at"] is None
    too_long = await api.post(f"{path}/rotate-secret", json={"overlap_seconds": 8 * 86400}, headers=ERP)
    assert too_long.status_code == 422


async def test_bad_ids_and_bodies_are_4xx(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/webhook-subscriptions/not-a-uuid", headers=ERP)).status_code == 422
    assert (await api.get(f"/v1/webhook-subscriptions/{uuid.uuid4()}", headers=ERP)).status_code == 404
    too_long = {"url": "https://e.example/" + "a" * 3000, "event_types": ["*"]}
    for body in (too_long, {"url": "x\u0000", "event_types": ["*"]}, {"url": "https://e.example/", "event_types": []}):
        response = await api.post("/v1/webhook-subscriptions", json=body, headers=ERP)
        assert response.status_code == 422
    response = await api.post(
        "/v1/webhook-subscriptions", content=b"{", headers={**ERP, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    created = await subscribe(api, "https://erp.example.com/hooks")
    for since in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00Z", "2026-01-01T00:00:00"):
        replay = await api.post(
            f"/v1/webhook-subscriptions/{created['id']}/replay", json={"created_from": since}, headers=ERP
        )
        assert replay.status_code == 422, since
        listed = await api.get("/v1/webhook-deliveries", params={"created_from": since}, headers=ERP)
        assert listed.status_code == 422, since
