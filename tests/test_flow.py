"""The thin end-to-end flow, HTTP to HTTP through the real broker:
contract signed → order created → order delivered → survey sent; account marked signed;
every event in the webhooks service's history."""

from __future__ import annotations

import json

import asyncpg

from tests.conftest import System, auth, wait_until
from tests.contracts.test_signing_page import sign_through_api
from tests.helpers import contract_payload
from tests.orders.helpers import approve_through_api

REP = auth("rep-1", "sales_rep")
MANAGER = auth("manager-1", "sales_manager")
SUPPORT = auth("agent-1", "support_agent")
ERP = auth("erp", "integration")


async def test_contract_to_order_to_survey(system: System, clean_db: asyncpg.Connection) -> None:
    for service in ("contracts", "orders", "service_desk", "leads", "webhooks"):
        await system.start_worker(service)
    contracts = await system.client("contracts")
    orders = await system.client("orders")
    surveys = await system.client("service_desk")
    accounts = await system.client("leads")
    history = await system.client("webhooks")

    created = await contracts.post("/v1/contracts", json=contract_payload("acme"), headers=REP)
    assert created.status_code == 201, created.text
    contract = created.json()
    assert contract["number"].startswith("HT-") and contract["status"] == "draft"
    assert contract["total_amount"] == "3300.00"
    assert created.headers["Location"] == f"/v1/contracts/{contract['id']}"

    # Legal review, then both parties sign through their signing pages.
    signed = await sign_through_api(contracts, created)
    assert signed["id"] == contract["id"] and len(signed["signatures"]) == 2

    async def order_for_contract():
        page = (await orders.get("/v1/orders", params={"contract_id": contract["id"]}, headers=REP)).json()
        return page["items"]

    [order] = await wait_until(order_for_contract, what="the order entered from the signed contract")
    assert order["number"].startswith("SO-")
    assert order["total_amount"] == "3300.00" and order["customer_id"] == "acme"
    assert [line["sku"] for line in order["lines"]] == ["PUMP-1", "SVC-1"]
    assert order["status"] == "pending_approval"
    await approve_through_api(orders, order["id"])  # sales manager, then finance

    delivered = await orders.post(
        f"/v1/orders/{order['id']}/deliver",
        json={"lines": [{"line_no": 1, "serial_numbers": ["SN-1", "SN-2"]}]},
        headers=MANAGER,
    )
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["status"] == "delivered"

    async def survey_for_order():
        page = (await surveys.get("/v1/surveys", params={"order_id": order["id"]}, headers=SUPPORT)).json()
        return page["items"]

    [survey] = await wait_until(survey_for_order, what="the satisfaction survey")
    assert survey["trigger"] == "order.delivered" and survey["customer_id"] == "acme"

    async def signed_account():
        page = (await accounts.get("/v1/accounts", params={"customer_id": "acme"}, headers=REP)).json()
        return page["items"] and page["items"][0]["classification"] == "signed"

    await wait_until(signed_account, what="the account marked signed")

    expected = [
        "account.classified.v1",
        "contract.approved.v1",
        "contract.drafted.v1",
        "contract.sent_for_signature.v1",
        "contract.signed.v1",
        "contract.submitted.v1",
        "order.approved.v1",
        "order.created.v1",
        "order.delivered.v1",
        "order.shipped.v1",
        "survey.sent.v1",
        "warranty.registered.v1",  # SN-1
        "warranty.registered.v1",  # SN-2
    ]

    async def full_history():
        page = (await history.get("/v1/events", params={"limit": 200}, headers=ERP)).json()
        types = sorted(e["type"] for e in page["items"])
        return types if set(types) >= set(expected) and len(types) >= len(expected) else None

    assert await wait_until(full_history, what="every event in the history") == expected
    # Events caused by events carry the correlation id of the request that started the chain,
    # and the id of the event that caused them.
    rows = await clean_db.fetch("SELECT type, envelope FROM webhooks.event_history")
    envelopes = {r["type"]: json.loads(r["envelope"]) for r in rows}
    signed, delivered = envelopes["contract.signed.v1"], envelopes["order.delivered.v1"]
    for caused, cause in [("order.created.v1", signed), ("account.classified.v1", signed)]:
        assert envelopes[caused]["correlationid"] == cause["correlationid"]
        assert envelopes[caused]["causationid"] == cause["id"]
    assert envelopes["survey.sent.v1"]["correlationid"] == delivered["correlationid"]
    assert envelopes["survey.sent.v1"]["causationid"] == delivered["id"]


async def test_creates_are_idempotent_by_key(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    headers = {**REP, "Idempotency-Key": "mobile-retry-1"}
    first = await contracts.post("/v1/contracts", json=contract_payload("retry"), headers=headers)
    again = await contracts.post("/v1/contracts", json=contract_payload("retry"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await contracts.post("/v1/contracts", json=contract_payload("different"), headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.contracts") == 1
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.outbox") == 1


async def test_stale_if_match_is_412_and_signing_twice_is_refused(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    created = await contracts.post("/v1/contracts", json=contract_payload("etag"), headers=REP)
    stale = await contracts.post(f"/v1/contracts/{created.json()['id']}/submit", headers={**REP, "If-Match": '"999"'})
    assert stale.status_code == 412
    signed = await sign_through_api(contracts, created)
    resubmitted = await contracts.post(f"/v1/contracts/{signed['id']}/submit", headers=REP)
    assert resubmitted.status_code == 409 and resubmitted.json()["title"] == "Invalid state transition"
    links = (await contracts.get(f"/v1/contracts/{signed['id']}/signing-links", headers=REP)).json()
    assert {link["state"] for link in links} == {"used"}  # each link signs once
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.outbox WHERE event_type = 'contract.signed.v1'") == 1


async def test_lists_are_cursor_paginated_with_a_link_header(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    for i in range(5):
        assert (await contracts.post("/v1/contracts", json=contract_payload(f"p{i}"), headers=REP)).status_code == 201
    first = await contracts.get("/v1/contracts", params={"limit": 2}, headers=REP)
    body = first.json()
    assert len(body["items"]) == 2 and body["next_cursor"]
    assert 'rel="next"' in first.headers["Link"]
    seen = [c["customer_id"] for c in body["items"]]
    cursor = body["next_cursor"]
    while cursor:
        page = (await contracts.get("/v1/contracts", params={"limit": 2, "cursor": cursor}, headers=REP)).json()
        seen += [c["customer_id"] for c in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [f"p{i}" for i in range(5)]
