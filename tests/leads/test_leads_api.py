"""Leads over HTTP and the bus, against real PostgreSQL and RabbitMQ: capture, normalisation and
matching, the first-registered-owner rule (also under concurrent registrations), grading,
owner override, and accounts from ``contract.signed`` becoming matchable customers."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import httpx

from shared.events import ContractLine, ContractSigned, make_envelope
from tests.conftest import System, auth, wait_until
from tests.test_pipeline import publish_raw

REP = auth("rep-1", "sales_rep")
REP2 = auth("rep-2", "sales_rep")
REP3 = auth("rep-3", "sales_rep")
MANAGER = auth("mgr-1", "sales_manager", team="t-east")
ADMIN = auth("admin-1", "admin")


async def team_of_three(leads: httpx.AsyncClient) -> None:
    """rep-1, rep-2 and rep-3 are team t-east (mgr-1's: a manager sees their team's leads only)."""
    response = await leads.put("/v1/sales-teams/t-east", json={"name": "East", "manager_id": "mgr-1"}, headers=ADMIN)
    assert response.status_code == 201, response.text
    for rep in ("rep-1", "rep-2", "rep-3"):
        body = {"name": rep, "team_id": "t-east", "capacity": 100}
        assert (await leads.put(f"/v1/sales-reps/{rep}", json=body, headers=ADMIN)).status_code == 201


def lead_body(**overrides) -> dict:
    body = {
        "source": "trade_show",
        "company_name": "ＡＢＣ科技有限公司",
        "contact_name": "Li Lei",
        "phone": "138 0013 8000",
        "email": "Li.Lei@ABC.cn",
        "uscc": "91110000600037341L",
        "region": "east",
        "industry": "manufacturing",
        "campaign": "spring-fair",
        "utm_source": "wechat",
        "utm_medium": "social",
        "budget": "600000.00",
        "currency": "CNY",
        "decision_timeframe": "within_1_month",
        "need_fit": "high",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def create(leads: httpx.AsyncClient, body: dict, headers: dict = REP) -> dict:
    response = await leads.post("/v1/leads", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def outbox(db: asyncpg.Connection, event_type: str) -> list[dict]:
    rows = await db.fetch("SELECT envelope FROM leads.outbox WHERE event_type = $1 ORDER BY created_at", event_type)
    return [json.loads(r["envelope"]) if isinstance(r["envelope"], str) else r["envelope"] for r in rows]


async def test_a_lead_is_normalised_graded_and_announced(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await team_of_three(leads)
    response = await leads.post("/v1/leads", json=lead_body(), headers=REP)
    assert response.status_code == 201, response.text
    lead = response.json()
    assert response.headers["Location"] == f"/v1/leads/{lead['id']}"
    assert response.headers["ETag"]
    assert lead["phone"] == "+8613800138000"
    assert lead["email"] == "li.lei@abc.cn"
    assert lead["uscc"] == "91110000600037341L"
    assert lead["company_name"] == "ＡＢＣ科技有限公司"  # kept as entered; matched by its normal form
    assert (lead["owner_id"], lead["registered_by"], lead["grade"], lead["grading_rules_version"]) == (
        "rep-1",
        "rep-1",
        "A",
        1,
    )
    assert (lead["campaign"], lead["utm_source"], lead["utm_medium"]) == ("spring-fair", "wechat", "social")
    assert lead["budget"] == "600000.00"
    assert (lead["duplicate_of_lead_id"], lead["ownership_conflict"]) == (None, False)
    [event] = await outbox(clean_db, "lead.created.v1")
    assert event["subject"] == lead["id"]
    assert (event["data"]["owner_id"], event["data"]["grade"], event["data"]["source"]) == ("rep-1", "A", "trade_show")

    got = await leads.get(f"/v1/leads/{lead['id']}", headers=REP)
    assert got.status_code == 200 and got.json() == lead
    assert (await leads.get(f"/v1/leads/{lead['id']}", headers=MANAGER)).status_code == 200
    assert (await leads.get(f"/v1/leads/{lead['id']}", headers=REP2)).status_code == 404  # another owner's
    assert (await leads.get(f"/v1/leads/{uuid.uuid4()}", headers=REP)).status_code == 404
    assert (await leads.get(f"/v1/leads/{lead['id']}")).status_code == 401
    assert (await leads.get(f"/v1/leads/{lead['id']}", headers=auth("x", "support_agent"))).status_code == 403


async def test_bad_input_is_a_problem_that_writes_nothing(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    for body in [
        lead_body(phone="12345"),
        lead_body(email="not-an-email"),
        lead_body(uscc="91110000600037341M"),
        lead_body(company_name="有限公司"),
        lead_body(company_name=None, phone=None, email=None),
        lead_body(source="carrier_pigeon"),
        lead_body(budget="-1"),
        lead_body(decision_timeframe="someday"),
        lead_body(unknown_field="x"),
        lead_body(company_name="a\x00b"),
    ]:
        response = await leads.post("/v1/leads", json=body, headers=REP)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await leads.post("/v1/leads", json=lead_body())).status_code == 401
    assert (await leads.post("/v1/leads", json=lead_body(), headers=auth("f", "finance"))).status_code == 403
    for table in ("leads", "customer_keys", "ownership_conflicts", "outbox"):
        assert await clean_db.fetchval(f"SELECT count(*) FROM leads.{table}") == 0, table


async def test_duplicates_across_phone_formats_and_full_width_names_are_linked(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    await team_of_three(leads)
    first = await create(leads, lead_body(email=None, uscc=None, company_name="Acme", phone="138 0013 8000"))
    # Same phone in other formats, by the owner and by another rep.
    again = await create(leads, lead_body(email=None, uscc=None, company_name=None, phone="8613800138000"))
    other = await create(leads, lead_body(email=None, uscc=None, company_name=None, phone="+86 13800138000"), REP2)
    assert (again["duplicate_of_lead_id"], again["owner_id"], again["ownership_conflict"]) == (
        first["id"],
        "rep-1",
        False,
    )
    assert (other["duplicate_of_lead_id"], other["owner_id"], other["registered_by"], other["ownership_conflict"]) == (
        first["id"],
        "rep-1",
        "rep-2",
        True,
    )
    # The rep who came second reads their registration and the conflict, not the first lead.
    assert (await leads.get(f"/v1/leads/{other['id']}", headers=REP2)).status_code == 200
    assert (await leads.get(f"/v1/leads/{first['id']}", headers=REP2)).status_code == 404
    conflicts = (await leads.get(f"/v1/leads/{other['id']}/ownership-conflicts", headers=REP2)).json()
    assert [(c["owner_id"], c["claimant_id"], c["kind"], c["value"]) for c in conflicts] == [
        ("rep-1", "rep-2", "phone", "+8613800138000")
    ]
    assert (await leads.get(f"/v1/leads/{first['id']}/ownership-conflicts", headers=REP3)).status_code == 404

    # Full-width and half-width company names with different legal forms are one customer.
    wide = await create(leads, lead_body(phone=None, email=None, uscc=None, company_name="ＸＹＺ　科技有限公司"), REP3)
    narrow = await create(leads, lead_body(phone=None, email=None, uscc=None, company_name="xyz 科技股份有限公司"), REP)
    assert (narrow["duplicate_of_lead_id"], narrow["owner_id"], narrow["ownership_conflict"]) == (
        wide["id"],
        "rep-3",
        True,
    )
    assert await clean_db.fetchval("SELECT count(*) FROM leads.customer_keys WHERE kind = 'name'") == 2

    listed = (await leads.get("/v1/leads", params={"duplicate_of_lead_id": first["id"]}, headers=MANAGER)).json()
    assert {lead["id"] for lead in listed["items"]} == {again["id"], other["id"]}


async def test_first_registration_wins_under_concurrent_registrations(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    for round_no in range(5):
        phone = f"+86 139 0000 {round_no:04d}"
        a, b = await asyncio.gather(
            create(leads, lead_body(phone=phone, email=None, uscc=None, company_name=f"Race {round_no}"), REP),
            create(leads, lead_body(phone=phone, email=None, uscc=None, company_name=f"Race {round_no} Inc."), REP2),
        )
        winner, loser = (a, b) if b["duplicate_of_lead_id"] == a["id"] else (b, a)
        assert winner["duplicate_of_lead_id"] is None and not winner["ownership_conflict"]
        assert loser["duplicate_of_lead_id"] == winner["id"]
        assert loser["owner_id"] == winner["owner_id"] == winner["registered_by"] != loser["registered_by"]
        assert loser["ownership_conflict"]
        owners = await clean_db.fetch(
            "SELECT DISTINCT owner_id FROM leads.customer_keys WHERE lead_id IN ($1::uuid, $2::uuid)",
            a["id"],
            b["id"],
        )
        assert [r["owner_id"] for r in owners] == [winner["owner_id"]]
        assert (
            await clean_db.fetchval("SELECT count(*) FROM leads.ownership_conflicts WHERE lead_id = $1", loser["id"])
            == 2  # by phone and by company name
        )


async def test_create_is_idempotent(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    headers = {**REP, "Idempotency-Key": str(uuid.uuid4())}
    first = await leads.post("/v1/leads", json=lead_body(), headers=headers)
    replay = await leads.post("/v1/leads", json=lead_body(), headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert (await leads.post("/v1/leads", json=lead_body(phone="139 0000 0000"), headers=headers)).status_code == 422
    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads") == 1
    assert len(await outbox(clean_db, "lead.created.v1")) == 1


async def test_list_is_paginated_filtered_and_scoped(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await team_of_three(leads)
    mine = []
    for i in range(5):
        body = lead_body(
            phone=None, email=None, uscc=None, company_name=f"Co {i}", source="referral" if i % 2 else "web_form"
        )
        mine.append(await create(leads, body))
    theirs = await create(
        leads, lead_body(phone=None, email=None, uscc=None, company_name="Other", budget="1000"), REP2
    )

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await leads.get("/v1/leads", params=params, headers=REP)
        assert response.status_code == 200
        page = response.json()
        seen += [lead["id"] for lead in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert 'rel="next"' in response.headers["Link"]
    assert seen == [lead["id"] for lead in mine]

    referral = (await leads.get("/v1/leads", params={"source": "referral"}, headers=REP)).json()["items"]
    assert [lead["id"] for lead in referral] == [mine[1]["id"], mine[3]["id"]]
    graded_c = (await leads.get("/v1/leads", params={"grade": "C"}, headers=MANAGER)).json()["items"]
    assert [lead["id"] for lead in graded_c] == [theirs["id"]]
    by_owner = (await leads.get("/v1/leads", params={"owner_id": "rep-2"}, headers=REP)).json()["items"]
    assert by_owner == []  # a rep's filter never widens what they see
    assert (await leads.get("/v1/leads", params={"grade": "Z"}, headers=REP)).status_code == 422
    assert (await leads.get("/v1/leads", params={"cursor": "garbage"}, headers=REP)).status_code == 400


async def test_changed_inputs_regrade_the_lead(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    lead = await create(leads, lead_body())
    url = f"/v1/leads/{lead['id']}/qualification"
    body = {"budget": "150000", "currency": "CNY", "decision_timeframe": "within_6_months", "need_fit": "medium"}
    stale = await leads.put(url, json=body, headers={**REP, "If-Match": '"0"'})
    assert stale.status_code == 412
    assert (await leads.put(url, json=body, headers=REP2)).status_code == 404
    response = await leads.put(url, json=body, headers={**REP, "If-Match": f'"{lead["version"]}"'})
    assert response.status_code == 200, response.text
    assert (response.json()["grade"], response.json()["budget"]) == ("B", "150000.00")
    [event] = await outbox(clean_db, "lead.graded.v1")
    assert (event["data"]["grade"], event["data"]["previous_grade"], event["data"]["rules_version"]) == ("B", "A", 1)
    # Same grade again: no event.
    body["budget"] = "160000"
    assert (await leads.put(url, json=body, headers=REP)).json()["grade"] == "B"
    assert len(await outbox(clean_db, "lead.graded.v1")) == 1


async def test_a_manager_overrides_the_first_registered_owner(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await team_of_three(leads)
    first = await create(leads, lead_body())
    second = await create(leads, lead_body(email=None, uscc=None, company_name=None), REP2)
    assert second["ownership_conflict"]
    url = f"/v1/leads/{second['id']}/owner"
    assert (await leads.post(url, json={"owner_id": "rep-2", "reason": "met first"}, headers=REP2)).status_code == 403
    assert (await leads.post(url, json={"owner_id": "rep-2", "reason": ""}, headers=MANAGER)).status_code == 422
    response = await leads.post(url, json={"owner_id": "rep-2", "reason": "rep-2 met them first"}, headers=MANAGER)
    assert response.status_code == 200, response.text
    assert (response.json()["owner_id"], response.json()["ownership_conflict"]) == ("rep-2", False)
    [event] = await outbox(clean_db, "lead.owner_changed.v1")
    assert (event["data"]["previous_owner_id"], event["data"]["changed_by"]) == ("rep-1", "mgr-1")
    conflicts = (await leads.get(f"/v1/leads/{second['id']}/ownership-conflicts", headers=REP2)).json()
    assert [(c["resolved_by"], c["resolution"]) for c in conflicts] == [("mgr-1", "rep-2 met them first")]
    # The customer's phone now belongs to rep-2: the next registration goes to them.
    third = await create(leads, lead_body(email=None, uscc=None, company_name=None, phone="8613800138000"), REP3)
    assert third["owner_id"] == "rep-2"
    # The first lead itself keeps its history.
    assert (await leads.get(f"/v1/leads/{first['id']}", headers=REP)).json()["owner_id"] == "rep-1"


def contract_signed(customer_name: str, owner: str = "rep-9") -> ContractSigned:
    return ContractSigned(
        contract_id=uuid.uuid4(),
        contract_number="HT-2026-000001",
        customer_id=f"cust-{uuid.uuid4().hex[:6]}",
        customer_name=customer_name,
        owner_id=owner,
        region="east",
        currency="CNY",
        lines=(
            ContractLine(
                line_no=1, sku="P", description="Pump", quantity=Decimal(1), unit_price=Decimal(10), amount=Decimal(10)
            ),
        ),
        subtotal_amount=Decimal("10.00"),
        total_amount=Decimal("10.00"),
        payment_terms="net 30",
        signed_at=datetime.now(UTC),
    )


async def test_a_signed_account_is_a_customer_new_leads_link_to(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("leads")
    leads = await system.client("leads")
    event = contract_signed("深圳市Ａｌｐｈａ科技有限公司")
    await publish_raw(make_envelope(event, source="/salesline/contracts", subject=str(event.contract_id)), times=2)
    await wait_until(lambda: clean_db.fetchval("SELECT count(*) FROM leads.accounts"), what="the account")
    await asyncio.sleep(0.5)
    assert await clean_db.fetchval("SELECT count(*) FROM leads.accounts") == 1
    account_id = await clean_db.fetchval("SELECT id FROM leads.accounts")
    assert await clean_db.fetch("SELECT kind, value, owner_id FROM leads.customer_keys") == [
        ("name", "深圳市alpha科技", "rep-9")
    ]
    lead = await create(leads, lead_body(company_name="深圳市 ALPHA 科技 有限公司", phone=None, email=None, uscc=None))
    assert (lead["matched_account_id"], lead["owner_id"], lead["ownership_conflict"]) == (
        str(account_id),
        "rep-9",
        True,
    )
