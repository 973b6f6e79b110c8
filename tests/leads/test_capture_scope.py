"""Who may see what, on every capture endpoint that takes an id: a rep their own leads (and the
pool), a manager their team's (the token's team), a director their region's, admin all; everyone
else gets a 404 that tells nothing (also before any validation of the body)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx

from tests.conftest import System, auth
from tests.leads.org import ADMIN, put_rep, put_team

OWNER = auth("r1", "sales_rep", team="t1", region="east")
MANAGER = auth("mgr-1", "sales_manager", team="t1", region="east")
DIRECTOR = auth("dir-1", "regional_director", region="east")
OTHER_REP = auth("r2", "sales_rep", team="t2", region="west")
OTHER_MANAGER = auth("mgr-2", "sales_manager", team="t2", region="west")
OTHER_DIRECTOR = auth("dir-2", "regional_director", region="west")
SEE = {"owner": OWNER, "manager": MANAGER, "director": DIRECTOR, "admin": ADMIN}
HIDDEN = {"other rep": OTHER_REP, "other manager": OTHER_MANAGER, "other director": OTHER_DIRECTOR}
FORM = auth("web-form", "integration")


def call() -> dict:
    return {"kind": "call", "occurred_at": datetime.now(UTC).isoformat()}


async def hidden_from_others(leads: httpx.AsyncClient, method: str, url: str, **kwargs) -> None:
    for who, headers in HIDDEN.items():
        response = await leads.request(method, url, headers=headers, **kwargs)
        if response.status_code == 403:  # the role may not call this at all: it learns nothing either
            assert response.json()["title"] != "Not found", (who, url)
            continue
        assert response.status_code == 404, (who, method, url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_every_capture_endpoint_with_an_id_is_scoped(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_team(leads, "t1", manager="mgr-1", region="east")
    await put_team(leads, "t2", manager="mgr-2", region="west")
    await put_rep(leads, "r1", team_id="t1", region="east")
    await put_rep(leads, "r2", team_id="t2", region="west")
    created = await leads.post(
        "/v1/leads", json={"source": "online_ad", "company_name": "Acme", "region": "east"}, headers=FORM
    )
    lead = created.json()
    assert (lead["owner_id"], lead["region"]) == ("r1", "east")
    url = f"/v1/leads/{lead['id']}"

    qualification = {"budget": "10.00", "decision_timeframe": "within_1_month", "need_fit": "high"}
    for method, path, body in [
        ("GET", url, None),
        ("GET", f"{url}/ownership-conflicts", None),
        ("PUT", f"{url}/qualification", qualification),
        ("POST", f"{url}/owner", {"owner_id": "r2", "reason": "mine now"}),
        ("POST", f"{url}/assign", {"owner_id": "r2"}),
        ("POST", f"{url}/release", {"reason": "not mine"}),
        ("POST", f"{url}/claim", None),
        ("POST", f"{url}/activities", call()),
        ("GET", f"{url}/activities", None),
    ]:
        await hidden_from_others(leads, method, path, json=body)
    for who, headers in SEE.items():
        assert (await leads.get(url, headers=headers)).status_code == 200, who
        logged = await leads.post(f"{url}/activities", json={**call(), "kind": "note"}, headers=headers)
        assert logged.status_code == 201, (who, logged.text)
        assert (await leads.get(f"{url}/activities", headers=headers)).status_code == 200, who
    listed = (await leads.get("/v1/leads", headers=OTHER_MANAGER)).json()["items"]
    assert listed == []
    assert [x["id"] for x in (await leads.get("/v1/leads", headers=MANAGER)).json()["items"]] == [lead["id"]]
    assert [x["id"] for x in (await leads.get("/v1/leads", headers=DIRECTOR)).json()["items"]] == [lead["id"]]
    # Nothing the hidden callers sent was written.
    assert await clean_db.fetchval("SELECT count(*) FROM leads.activities") == len(SEE)
    assert await clean_db.fetchval("SELECT owner_id FROM leads.leads") == "r1"

    # Reps and teams.
    for method, path, body in [
        ("GET", "/v1/sales-reps/r1", None),
        ("PUT", "/v1/sales-reps/r1", {"name": "R1", "team_id": "t1", "region": "east", "capacity": 1}),
        ("GET", "/v1/sales-teams/t1", None),
        ("PUT", "/v1/sales-teams/t1", {"name": "T1", "region": "east", "manager_id": "mgr-2"}),
    ]:
        await hidden_from_others(leads, method, path, json=body)
    for who, headers in SEE.items():
        assert (await leads.get("/v1/sales-reps/r1", headers=headers)).status_code == 200, who
        assert (await leads.get("/v1/sales-teams/t1", headers=headers)).status_code == 200, who
    assert (await leads.get("/v1/sales-reps/r1", headers=ADMIN)).json()["capacity"] == 100

    # An account's activities (the account of a lead r1 converted).
    body = {
        "source": "referral",
        "company_name": "Big Co",
        "budget": "900000.00",
        "decision_timeframe": "within_1_month",
        "need_fit": "high",
    }
    own = (await leads.post("/v1/leads", json=body, headers=OWNER)).json()
    converted = await leads.post(f"/v1/leads/{own['id']}/convert", json={}, headers=OWNER)
    assert converted.status_code == 201, converted.text
    account_url = f"/v1/accounts/{converted.json()['account']['id']}/activities"
    await hidden_from_others(leads, "POST", account_url, json=call())
    await hidden_from_others(leads, "GET", account_url)
    for who, headers in SEE.items():
        assert (await leads.post(account_url, json=call(), headers=headers)).status_code == 201, who
        assert len((await leads.get(account_url, headers=headers)).json()["items"]) >= 1, who
