"""The sales side of the leads service over HTTP, against real PostgreSQL and RabbitMQ: lead
conversion (idempotent, also under concurrent double submission), accounts with their
classification, tier and follow-up timer, contacts, opportunities and their stage machine, and
who may see what (rep: own, manager: team, director: region, admin: all; others get a 404)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import httpx

from tests.conftest import System, auth, wait_until
from tests.leads.test_leads_api import lead_body, outbox

REP = auth("rep-1", "sales_rep", team="t1", region="east")
REP2 = auth("rep-2", "sales_rep", team="t1", region="east")
MANAGER = auth("mgr-1", "sales_manager", team="t1", region="east")
OTHER_MANAGER = auth("mgr-2", "sales_manager", team="t2", region="east")
DIRECTOR = auth("dir-1", "regional_director", region="east")
OTHER_DIRECTOR = auth("dir-2", "regional_director", region="west")
ADMIN = auth("admin-1", "admin")
SEE = (REP, MANAGER, DIRECTOR, ADMIN)
HIDDEN = (REP2, OTHER_MANAGER, OTHER_DIRECTOR)


async def converted(leads: httpx.AsyncClient, headers: dict = REP, **body) -> dict:
    lead = await leads.post("/v1/leads", json=lead_body(), headers=headers)
    assert lead.status_code == 201, lead.text
    response = await leads.post(f"/v1/leads/{lead.json()['id']}/convert", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def assert_scoped(leads: httpx.AsyncClient, method: str, url: str, hidden=HIDDEN, **kwargs) -> None:
    """Every role that may not see the object gets a 404, before anything else."""
    for headers in hidden:
        response = await leads.request(method, url, headers=headers, **kwargs)
        assert response.status_code == 404, (headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_qualified_lead_converts_once_into_account_contact_and_opportunity(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    lead = (await leads.post("/v1/leads", json=lead_body(), headers=REP)).json()
    url = f"/v1/leads/{lead['id']}/convert"
    await assert_scoped(leads, "POST", url, hidden=(REP2,), json={})  # leads are scoped by their own rules
    body = {"opportunity_name": "Pumps for ABC", "amount": "800000.00", "expected_close_date": "2027-01-31"}
    # A double submission, at the same moment: one conversion, the other answers with it.
    first, second = await asyncio.gather(
        leads.post(url, json=body, headers=REP), leads.post(url, json=body, headers=REP)
    )
    assert sorted([first.status_code, second.status_code]) == [200, 201], (first.text, second.text)
    assert first.json() == second.json()
    result = first.json()
    account, contact, opportunity = result["account"], result["contact"], result["opportunity"]
    assert (account["name"], account["owner_id"], account["team"], account["region"]) == (
        "ＡＢＣ科技有限公司",
        "rep-1",
        "t1",
        "east",
    )
    assert (account["classification"], account["tier"], account["lead_id"]) == ("tracking", "normal", lead["id"])
    assert (contact["name"], contact["phone"], contact["email"]) == ("Li Lei", "+8613800138000", "li.lei@abc.cn")
    assert (opportunity["stage"], opportunity["probability"], opportunity["amount"]) == (
        "qualification",
        "10.00",
        "800000.00",
    )
    assert (opportunity["weighted_value"], opportunity["expected_close_date"], opportunity["source"]) == (
        "80000.00",
        "2027-01-31",
        "trade_show",
    )
    assert (opportunity["account_id"], opportunity["contact_id"]) == (account["id"], contact["id"])
    again = await leads.post(url, json={"amount": "1.00"}, headers=REP)  # later, another body: still the first
    assert again.status_code == 200 and again.json() == result
    for table in ("accounts", "contacts", "opportunities", "lead_conversions"):
        assert await clean_db.fetchval(f"SELECT count(*) FROM leads.{table}") == 1, table
    [event] = await outbox(clean_db, "lead.converted.v1")
    assert event["subject"] == lead["id"]
    assert (event["data"]["account_id"], event["data"]["opportunity_id"], event["data"]["amount"]) == (
        account["id"],
        opportunity["id"],
        "800000.00",
    )
    # The account's identifiers are customer keys now: a later lead of the company links to it.
    later = (await leads.post("/v1/leads", json=lead_body(phone=None, email=None), headers=REP2)).json()
    assert (later["matched_account_id"], later["owner_id"]) == (account["id"], "rep-1")
    # The normal tier's follow-up reminder is a durable timer, a month from now.
    due = await clean_db.fetchval("SELECT due_at FROM leads.timers WHERE kind = 'account.follow_up_due'")
    created = await clean_db.fetchval("SELECT created_at FROM leads.accounts")
    assert due - created == timedelta(days=30)
    # And the new account's 7-day first-contact clock runs.
    contact_due = await clean_db.fetchval("SELECT due_at FROM leads.timers WHERE kind = 'account.first_contact'")
    assert contact_due - created == timedelta(days=7)


async def test_a_lead_matching_an_account_converts_onto_it(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    account = (await converted(leads))["account"]
    lead = (await leads.post("/v1/leads", json=lead_body(contact_name="Han Mei", email=None), headers=REP)).json()
    response = await leads.post(f"/v1/leads/{lead['id']}/convert", json={"contact_title": "CTO"}, headers=REP)
    assert response.status_code == 201, response.text
    assert response.json()["account"]["id"] == account["id"]
    assert (response.json()["contact"]["name"], response.json()["contact"]["title"]) == ("Han Mei", "CTO")
    assert await clean_db.fetchval("SELECT count(*) FROM leads.accounts") == 1
    contacts = (await leads.get(f"/v1/accounts/{account['id']}/contacts", headers=REP)).json()["items"]
    assert [c["name"] for c in contacts] == ["Li Lei", "Han Mei"]


async def test_unqualified_and_foreign_leads_do_not_convert(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    c_lead = (await leads.post("/v1/leads", json=lead_body(need_fit="low"), headers=REP)).json()
    assert c_lead["grade"] == "C"
    response = await leads.post(f"/v1/leads/{c_lead['id']}/convert", json={}, headers=REP)
    assert response.status_code == 409 and response.headers["content-type"].startswith("application/problem+json")
    assert (await leads.post(f"/v1/leads/{uuid.uuid4()}/convert", json={}, headers=REP)).status_code == 404
    lead = (
        await leads.post(
            "/v1/leads",
            json=lead_body(phone="13900139000", uscc=None, email=None, company_name="Other Co"),
            headers=REP,
        )
    ).json()
    stale = await leads.post(f"/v1/leads/{lead['id']}/convert", json={}, headers={**REP, "If-Match": '"99"'})
    assert stale.status_code == 412
    assert (await leads.post(f"/v1/leads/{lead['id']}/convert", json={"tier": "gold"}, headers=REP)).status_code == 422
    support = auth("agent", "support_agent")
    assert (await leads.post(f"/v1/leads/{lead['id']}/convert", json={}, headers=support)).status_code == 403
    for table in ("accounts", "contacts", "opportunities", "lead_conversions"):
        assert await clean_db.fetchval(f"SELECT count(*) FROM leads.{table}") == 0, table
    assert await outbox(clean_db, "lead.converted.v1") == []


async def test_accounts_are_scoped_classified_and_tiered(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    account = (await converted(leads))["account"]
    url = f"/v1/accounts/{account['id']}"
    for headers in SEE:
        response = await leads.get(url, headers=headers)
        assert response.status_code == 200, headers
        assert [a["id"] for a in (await leads.get("/v1/accounts", headers=headers)).json()["items"]] == [account["id"]]
    for headers in HIDDEN:
        assert (await leads.get("/v1/accounts", headers=headers)).json()["items"] == []
    await assert_scoped(leads, "GET", url)
    await assert_scoped(leads, "PATCH", url, json={"classification": "key"})
    await assert_scoped(leads, "GET", f"{url}/contacts")
    await assert_scoped(leads, "POST", f"{url}/contacts", json={"name": "X"})

    etag = (await leads.get(url, headers=REP)).headers["ETag"]
    response = await leads.patch(
        url,
        json={"classification": "key", "tier": "high_value", "reason": "big buyer"},
        headers={**REP, "If-Match": etag},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["classification"], changed["tier"]) == ("key", "high_value")
    stale = await leads.patch(url, json={"classification": "potential"}, headers={**MANAGER, "If-Match": etag})
    assert stale.status_code == 412
    assert (await leads.patch(url, json={}, headers=REP)).status_code == 422
    assert (await leads.patch(url, json={"classification": "vip"}, headers=REP)).status_code == 422
    [classified] = await outbox(clean_db, "account.classified.v1")
    assert (classified["data"]["classification"], classified["data"]["reason"]) == ("key", "big buyer")
    [tiered] = await outbox(clean_db, "account.tier_changed.v1")
    assert tiered["data"]["previous_tier"] == "normal"
    # The monthly reminder gave way to a weekly one.
    timers = await clean_db.fetch("SELECT due_at FROM leads.timers WHERE kind = 'account.follow_up_due'")
    assert [t["due_at"].isoformat() for t in timers] == [changed["next_follow_up_at"].replace("Z", "+00:00")]

    added = await leads.post(
        f"{url}/contacts", json={"name": "Wang Wu", "phone": "+86 139 0013 9000", "email": "W@X.cn"}, headers=MANAGER
    )
    assert added.status_code == 201, added.text
    assert (added.json()["phone"], added.json()["email"]) == ("+8613900139000", "w@x.cn")
    bad = await leads.post(f"{url}/contacts", json={"name": "Z", "phone": "12"}, headers=REP)
    assert bad.status_code == 422
    assert await clean_db.fetchval("SELECT count(*) FROM leads.contacts") == 2


async def test_the_follow_up_reminder_fires_once_and_schedules_the_next(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    account = (await converted(leads, tier="high_value"))["account"]
    # The reminder fell due while no worker ran; the worker fires it when it comes up.
    await clean_db.execute("UPDATE leads.timers SET due_at = now() - interval '1 minute'")
    await system.start_worker("leads")
    await wait_until(lambda: outbox(clean_db, "account.follow_up_due.v1"), what="the follow-up reminder")
    await asyncio.sleep(0.6)  # several timer polls
    [event] = await outbox(clean_db, "account.follow_up_due.v1")
    assert (event["data"]["account_id"], event["data"]["tier"], event["data"]["owner_id"]) == (
        account["id"],
        "high_value",
        "rep-1",
    )
    timers = await clean_db.fetch(
        "SELECT due_at, fired_at FROM leads.timers WHERE kind = 'account.follow_up_due' ORDER BY due_at"
    )
    assert [t["fired_at"] is not None for t in timers] == [True, False]
    got = (await leads.get(f"/v1/accounts/{account['id']}", headers=REP)).json()
    assert got["next_follow_up_at"].replace("Z", "+00:00") == timers[1]["due_at"].isoformat()
    assert timers[1]["due_at"] - timedelta(days=7) == (
        await clean_db.fetchval("SELECT created_at FROM leads.accounts") + timedelta(days=7)
    )


async def test_opportunity_stages_are_a_state_machine(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    opportunity = (await converted(leads, amount="1000.00"))["opportunity"]
    url = f"/v1/opportunities/{opportunity['id']}"
    for headers in SEE:
        assert (await leads.get(url, headers=headers)).status_code == 200
    await assert_scoped(leads, "GET", url)
    await assert_scoped(leads, "PATCH", url, json={"amount": "1.00"})
    await assert_scoped(leads, "POST", f"{url}/stage", json={"stage": "needs_analysis"})

    async def move(stage: str, headers: dict = REP, **extra) -> httpx.Response:
        return await leads.post(f"{url}/stage", json={"stage": stage, **extra}, headers=headers)

    assert (await move("proposal")).status_code == 409  # skipping a stage
    assert (await move("qualification")).status_code == 409  # already there
    assert (await move("won")).status_code == 409  # not from qualification, and no accepted quote
    response = await move("needs_analysis")
    assert response.status_code == 200, response.text
    assert (response.json()["probability"], response.json()["weighted_value"]) == ("25.00", "250.00")
    etag = response.headers["ETag"]
    assert (await move("proposal", headers={**REP, "If-Match": '"7"'})).status_code == 412
    assert (await move("proposal", headers={**MANAGER, "If-Match": etag})).status_code == 200
    assert (await move("qualification")).status_code == 200  # back is fine
    for stage in ("needs_analysis", "proposal", "negotiation"):
        assert (await move(stage)).status_code == 200
    assert (await move("won")).status_code == 409  # negotiation, but no accepted quote
    patched = await leads.patch(url, json={"probability": "80", "amount": "2000.00"}, headers=REP)
    assert patched.status_code == 200 and patched.json()["weighted_value"] == "1600.00"
    assert (await leads.patch(url, json={}, headers=REP)).status_code == 422  # nothing to change
    assert (await leads.patch(url, json={"probability": "101"}, headers=REP)).status_code == 422
    assert (await move("lost")).status_code == 422  # a reason is required
    lost = await move("lost", lost_reason="went with a competitor")
    assert lost.status_code == 200 and (lost.json()["stage"], lost.json()["probability"]) == ("lost", "0.00")
    assert (await move("negotiation")).status_code == 409
    assert (await leads.patch(url, json={"name": "again"}, headers=REP)).status_code == 409
    changes = await outbox(clean_db, "opportunity.stage_changed.v1")
    assert [e["data"]["stage"] for e in changes] == [
        "needs_analysis",
        "proposal",
        "qualification",
        "needs_analysis",
        "proposal",
        "negotiation",
        "lost",
    ]
    [lost_event] = await outbox(clean_db, "opportunity.lost.v1")
    assert (lost_event["data"]["previous_stage"], lost_event["data"]["reason"]) == (
        "negotiation",
        "went with a competitor",
    )
    stages = await clean_db.fetch(
        "SELECT stage, left_at IS NULL AS open FROM leads.opportunity_stages ORDER BY entered_at"
    )
    assert [(s["stage"], s["open"]) for s in stages][-2:] == [("negotiation", False), ("lost", True)]
    assert len(stages) == 8


async def test_opportunities_rank_by_weighted_value(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    amounts = ["300.00", "5000.00", "1000.00", "20.00", "700.00"]
    ids = {}
    for i, amount in enumerate(amounts):
        lead = await leads.post(
            "/v1/leads",
            json=lead_body(company_name=f"Co {i}", phone=f"1390013900{i}", email=None, uscc=None),
            headers=REP,
        )
        converted_ = await leads.post(f"/v1/leads/{lead.json()['id']}/convert", json={"amount": amount}, headers=REP)
        ids[amount] = converted_.json()["opportunity"]["id"]
    await leads.post(f"/v1/opportunities/{ids['20.00']}/stage", json={"stage": "needs_analysis"}, headers=REP)
    # weighted: 5000*10% = 500, 1000*10% = 100, 700*10% = 70, 300*10% = 30, 20*25% = 5
    seen, cursor = [], None
    while True:
        params = {"sort": "weighted_value", "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await leads.get("/v1/opportunities", params=params, headers=MANAGER)
        page = response.json()
        seen += [o["weighted_value"] for o in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert 'rel="next"' in response.headers["Link"]
    assert seen == ["500.00", "100.00", "70.00", "30.00", "5.00"]
    oldest = (await leads.get("/v1/opportunities", headers=REP)).json()["items"]
    assert [o["amount"] for o in oldest] == amounts
    stage = (await leads.get("/v1/opportunities", params={"stage": "needs_analysis"}, headers=DIRECTOR)).json()
    assert [o["id"] for o in stage["items"]] == [ids["20.00"]]
    assert (await leads.get("/v1/opportunities", headers=OTHER_DIRECTOR)).json()["items"] == []
    assert (await leads.get("/v1/opportunities", params={"sort": "random"}, headers=REP)).status_code == 422
    assert (await leads.get("/v1/opportunities", params={"cursor": "junk"}, headers=REP)).status_code == 400


async def test_a_converted_account_belongs_to_the_owners_team_in_the_crm(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    team = await leads.put("/v1/sales-teams/t5", json={"name": "Team 5", "region": "east"}, headers=ADMIN)
    assert team.status_code == 201, team.text
    rep = await leads.put(
        "/v1/sales-reps/rep-1", json={"name": "Rep 1", "team_id": "t5", "capacity": 50}, headers=ADMIN
    )
    assert rep.status_code == 201, rep.text
    lead = (await leads.post("/v1/leads", json=lead_body(), headers=REP)).json()  # the token still says t1
    result = await leads.post(f"/v1/leads/{lead['id']}/convert", json={}, headers=ADMIN)
    assert result.status_code == 201, result.text
    account, opportunity = result.json()["account"], result.json()["opportunity"]
    assert (account["owner_id"], account["team"], opportunity["team"]) == ("rep-1", "t5", "t5")
    t5_manager = auth("mgr-5", "sales_manager", team="t5")
    assert (await leads.get(f"/v1/accounts/{account['id']}", headers=t5_manager)).status_code == 200
    assert (await leads.get(f"/v1/opportunities/{opportunity['id']}", headers=t5_manager)).status_code == 200
    assert (await leads.get(f"/v1/accounts/{account['id']}", headers=MANAGER)).status_code == 404


async def test_an_account_from_contract_signed_gets_its_owners_team_and_a_follow_up(
    system: System, clean_db: asyncpg.Connection
) -> None:
    from shared.events import make_envelope
    from tests.leads.test_leads_api import contract_signed
    from tests.test_pipeline import publish_raw

    leads = await system.client("leads")
    assert (await leads.put("/v1/sales-teams/t1", json={"name": "Team 1"}, headers=ADMIN)).status_code == 201
    rep = await leads.put("/v1/sales-reps/rep-9", json={"name": "Rep 9", "team_id": "t1", "capacity": 5}, headers=ADMIN)
    assert rep.status_code == 201, rep.text
    await system.start_worker("leads")
    event = contract_signed("Beta Co", owner="rep-9")
    await publish_raw(make_envelope(event, source="/salesline/contracts", subject=str(event.contract_id)), times=2)
    await wait_until(lambda: clean_db.fetchval("SELECT count(*) FROM leads.accounts"), what="the account")
    await asyncio.sleep(0.5)  # the second delivery had its chance
    [account] = await clean_db.fetch("SELECT id, team, created_at, next_follow_up_at FROM leads.accounts")
    assert (account["team"], account["next_follow_up_at"] - account["created_at"]) == ("t1", timedelta(days=30))
    timers = await clean_db.fetch("SELECT key FROM leads.timers WHERE kind = 'account.follow_up_due'")
    assert [t["key"].split("@")[0] for t in timers] == [str(account["id"])]
    response = await leads.get(f"/v1/accounts/{account['id']}", headers=MANAGER)  # the team's manager sees it
    assert response.status_code == 200 and response.json()["classification"] == "signed"
