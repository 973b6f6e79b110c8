"""Merging a duplicate lead into another: both histories stay, the duplicate follows the
survivor, its keys and behaviour points join it; scope and state rules."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from tests.conftest import System, auth
from tests.leads.org import events

R1, R2 = auth("r1", "sales_rep"), auth("r2", "sales_rep")
ADMIN = auth("admin-1", "admin")


def now() -> str:
    return datetime.now(UTC).isoformat()


async def test_a_duplicate_merges_with_its_history(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    first = (
        await leads.post(
            "/v1/leads", json={"source": "referral", "company_name": "Acme", "phone": "13800138000"}, headers=R1
        )
    ).json()
    dup = (
        await leads.post(
            "/v1/leads",
            json={"source": "trade_show", "company_name": "ACME Co., Ltd.", "email": "li@acme.cn"},
            headers=R1,
        )
    ).json()
    assert dup["duplicate_of_lead_id"] == first["id"]
    listed = await leads.get("/v1/leads", params={"duplicate_of_lead_id": first["id"]}, headers=R1)
    assert [x["id"] for x in listed.json()["items"]] == [dup["id"]]
    for lead, kind in ((first, "call"), (dup, "visit")):
        body = {"kind": kind, "occurred_at": now()}
        assert (await leads.post(f"/v1/leads/{lead['id']}/activities", json=body, headers=R1)).status_code == 201
        interaction = {"type": "meeting_held", "occurred_at": now()}
        assert (
            await leads.post(f"/v1/leads/{lead['id']}/interactions", json=interaction, headers=R1)
        ).status_code == 201

    url = f"/v1/leads/{first['id']}/merge"
    assert (await leads.post(url, json={"duplicate_id": first["id"]}, headers=R1)).status_code == 422
    assert (await leads.post(url, json={"duplicate_id": dup["id"]}, headers=R2)).status_code == 404
    stale = {"If-Match": '"99"', **R1}
    assert (await leads.post(url, json={"duplicate_id": dup["id"]}, headers=stale)).status_code == 412
    merged = await leads.post(url, json={"duplicate_id": dup["id"], "reason": "same company"}, headers=R1)
    assert merged.status_code == 200, merged.text
    assert (await leads.post(url, json={"duplicate_id": dup["id"]}, headers=R1)).status_code == 409  # once
    back = await leads.post(f"/v1/leads/{dup['id']}/merge", json={"duplicate_id": first["id"]}, headers=R1)
    assert back.status_code == 409  # a merged lead takes no merges

    gone = (await leads.get(f"/v1/leads/{dup['id']}", headers=R1)).json()
    assert gone["merged_into_lead_id"] == first["id"]
    kinds = [a["kind"] for a in (await leads.get(f"/v1/leads/{first['id']}/activities", headers=R1)).json()["items"]]
    assert sorted(kinds) == ["call", "visit"]  # both histories
    assert [a["kind"] for a in (await leads.get(f"/v1/leads/{dup['id']}/activities", headers=R1)).json()["items"]] == [
        "visit"
    ]
    score = (await leads.get(f"/v1/leads/{first['id']}/interactions", headers=R1)).json()["behaviour_score"]
    assert score == 60  # two meetings just now
    keys = await clean_db.fetch("SELECT DISTINCT lead_id FROM leads.customer_keys")
    assert [str(r["lead_id"]) for r in keys] == [first["id"]]
    [event] = await events(clean_db, "lead.merged.v1")
    assert (event["lead_id"], event["merged_lead_id"], event["reason"]) == (first["id"], dup["id"], "same company")


async def test_pool_and_converted_duplicates(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    mine = (await leads.post("/v1/leads", json={"source": "referral", "company_name": "Mine"}, headers=R1)).json()
    pooled = (
        await leads.post(
            "/v1/leads", json={"source": "web_form", "company_name": "Pooled"}, headers=auth("f", "integration")
        )
    ).json()
    assert pooled["owner_id"] is None
    url = f"/v1/leads/{mine['id']}/merge"
    assert (await leads.post(url, json={"duplicate_id": pooled["id"]}, headers=R1)).status_code == 409  # claim it first
    assert (await leads.post(url, json={"duplicate_id": pooled["id"]}, headers=ADMIN)).status_code == 200
    assert (await leads.get("/v1/lead-pool", headers=R1)).json()["items"] == []
    assert (await leads.get(f"/v1/leads/{pooled['id']}", headers=R1)).json()["owner_id"] == "r1"

    qualified = {
        "source": "referral",
        "company_name": "Big",
        "budget": "900000.00",
        "decision_timeframe": "within_1_month",
        "need_fit": "high",
    }
    big = (await leads.post("/v1/leads", json=qualified, headers=R1)).json()
    assert (await leads.post(f"/v1/leads/{big['id']}/convert", json={}, headers=R1)).status_code == 201
    refused = await leads.post(url, json={"duplicate_id": big["id"]}, headers=R1)
    assert refused.status_code == 409 and "converted" in refused.json()["detail"]
