"""Web-to-lead: a public endpoint per web form, with the form's API key, a honeypot, a per-form
rate limit, and one answer whatever happened to the lead (it never tells whether a customer
was already known)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from tests.conftest import System, auth
from tests.leads.org import ADMIN, events, put_rep

MARKETING = auth("mkt-1", "marketing_director")


async def test_a_web_form_sends_leads_with_its_key(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east")
    form = {"name": "Contact us", "campaign": "autumn-site", "region": "east", "rate_limit_per_minute": 10}
    assert (await leads.put("/v1/lead-forms/site", json=form, headers=auth("r", "sales_rep"))).status_code == 403
    created = await leads.put("/v1/lead-forms/site", json=form, headers=MARKETING)
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    assert key and len(key) >= 40
    shown = await leads.get("/v1/lead-forms/site", headers=ADMIN)
    assert shown.json()["api_key"] is None  # shown once only
    assert key not in (await leads.get("/v1/lead-forms", headers=MARKETING)).text
    assert await clean_db.fetchval("SELECT key_sha256 <> $1 FROM leads.lead_forms", key)  # stored hashed

    url = "/v1/lead-forms/site/submissions"
    body = {"company_name": "Acme", "contact_name": "Li", "phone": "138 0013 8000", "utm_source": "baidu"}
    first = await leads.post(url, json=body, headers={"X-Api-Key": key})
    assert first.status_code == 202, first.text
    again = await leads.post(url, json={**body, "phone": "+86 13800138000"}, headers={"X-Api-Key": key})
    bot = await leads.post(
        url, json={**body, "company_name": "Spam", "website": "http://x"}, headers={"X-Api-Key": key}
    )
    # The same answer for a new lead, a known customer and a bot.
    assert (again.status_code, again.content) == (bot.status_code, bot.content) == (202, first.content)
    rows = await clean_db.fetch(
        "SELECT source, campaign, region, utm_source, registered_by, owner_id, duplicate_of_lead_id"
        " FROM leads.leads ORDER BY created_at"
    )
    assert len(rows) == 2  # the bot's was dropped
    assert tuple(rows[0])[:6] == ("web_form", "autumn-site", "east", "baidu", "form:site", "r1")
    assert rows[1]["duplicate_of_lead_id"] is not None and rows[1]["owner_id"] == "r1"
    assert [e["method"] for e in await events(clean_db, "lead.assigned.v1")] == ["rules"]

    # A form with a limit of 2 a minute (not started in a minute's last seconds: one fixed window).
    trade_fair = {"name": "Trade fair kiosk", "rate_limit_per_minute": 2}
    kiosk = (await leads.put("/v1/lead-forms/kiosk", json=trade_fair, headers=ADMIN)).json()["api_key"]
    if datetime.now(UTC).second > 50:
        await asyncio.sleep(61 - datetime.now(UTC).second)
    answers = []
    for name in ("K1", "K2", "K3"):
        answer = await leads.post(
            "/v1/lead-forms/kiosk/submissions", json={"company_name": name}, headers={"X-Api-Key": kiosk}
        )
        answers.append(answer)
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    assert answers[2].headers["content-type"].startswith("application/problem+json")
    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads WHERE registered_by = 'form:kiosk'") == 2


async def test_wrong_keys_unknown_forms_and_bad_input_are_refused(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    key = (await leads.put("/v1/lead-forms/site", json={"name": "Site"}, headers=ADMIN)).json()["api_key"]
    body = {"company_name": "Acme"}
    wrong = await leads.post("/v1/lead-forms/site/submissions", json=body, headers={"X-Api-Key": key + "x"})
    unknown = await leads.post("/v1/lead-forms/other/submissions", json=body, headers={"X-Api-Key": key})
    missing = await leads.post("/v1/lead-forms/site/submissions", json=body)
    assert wrong.status_code == unknown.status_code == missing.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]  # an unknown form looks like a wrong key
    for bad in ({}, {"phone": "12345"}, {"email": "no"}, {"company_name": "a\x00b"}, {"company_name": "A", "x": 1}):
        response = await leads.post("/v1/lead-forms/site/submissions", json=bad, headers={"X-Api-Key": key})
        assert response.status_code == 422, (bad, response.text)
    rotated = await leads.post("/v1/lead-forms/site/key", headers=ADMIN)
    new_key = rotated.json()["api_key"]
    assert rotated.status_code == 200 and new_key != key
    assert (
        await leads.post("/v1/lead-forms/site/submissions", json=body, headers={"X-Api-Key": key})
    ).status_code == 401
    ok = await leads.post("/v1/lead-forms/site/submissions", json=body, headers={"X-Api-Key": new_key})
    assert ok.status_code == 202
    closed = {"name": "Site", "active": False}
    assert (await leads.put("/v1/lead-forms/site", json=closed, headers=ADMIN)).status_code == 200
    off = await leads.post("/v1/lead-forms/site/submissions", json=body, headers={"X-Api-Key": new_key})
    assert off.status_code == 401
    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads") == 1
