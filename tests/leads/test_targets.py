"""Targets over HTTP and the bus, against real PostgreSQL and RabbitMQ: a team target for a
period decomposed over its reps to the cent, who may set and see which targets, and
achievement from ``contract.signed`` (each event delivered twice, counted once; the period's
bounds in the business time zone)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from shared.events import ContractLine, ContractSigned, make_envelope
from tests.conftest import System, auth, wait_until
from tests.leads.test_sales_api import ADMIN, DIRECTOR, MANAGER, OTHER_DIRECTOR, OTHER_MANAGER, REP, REP2
from tests.test_pipeline import publish_raw

REP3 = auth("rep-3", "sales_rep", team="t1", region="east")


def target_body(**overrides) -> dict:
    return {
        "team": "t1",
        "period": "2026-Q4",
        "amount": "100000.00",
        "reps": [{"rep_id": "rep-1"}, {"rep_id": "rep-2"}, {"rep_id": "rep-3"}],
        **overrides,
    }


def signed(owner: str, total: str, signed_at: datetime, currency: str = "CNY") -> ContractSigned:
    return ContractSigned(
        contract_id=uuid.uuid4(),
        contract_number="HT-2026-000042",
        customer_id="acme",
        customer_name="ACME",
        owner_id=owner,
        region="east",
        currency=currency,
        lines=(
            ContractLine(
                line_no=1,
                sku="P",
                description="Pump",
                quantity=Decimal(1),
                unit_price=Decimal(total),
                amount=Decimal(total),
            ),
        ),
        subtotal_amount=Decimal(total),
        total_amount=Decimal(total),
        payment_terms="net 30",
        signed_at=signed_at,
    )


async def test_a_team_target_is_decomposed_over_its_reps(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    response = await leads.post("/v1/targets", json=target_body(), headers=MANAGER)
    assert response.status_code == 201, response.text
    team, *reps = response.json()
    assert (team["scope"], team["period_kind"], team["starts_on"], team["ends_on"]) == (
        "team",
        "quarter",
        "2026-10-01",
        "2027-01-01",
    )
    assert [(r["owner_id"], r["amount"], r["parent_id"]) for r in reps] == [
        ("rep-1", "33333.34", team["id"]),
        ("rep-2", "33333.33", team["id"]),
        ("rep-3", "33333.33", team["id"]),
    ]
    weighted = await leads.post(
        "/v1/targets",
        json=target_body(
            period="2026-11", amount="1000.00", reps=[{"rep_id": "rep-1", "weight": "3"}, {"rep_id": "rep-2"}]
        ),
        headers=DIRECTOR,
    )
    assert weighted.status_code == 201, weighted.text
    assert [t["amount"] for t in weighted.json()] == ["1000.00", "750.00", "250.00"]
    year = await leads.post("/v1/targets", json=target_body(period="2027"), headers=ADMIN)
    assert (year.json()[0]["starts_on"], year.json()[0]["ends_on"]) == ("2027-01-01", "2028-01-01")

    assert (await leads.post("/v1/targets", json=target_body(), headers=MANAGER)).status_code == 409  # one per period
    assert (
        await leads.post("/v1/targets", json=target_body(period="2026-12"), headers=OTHER_MANAGER)
    ).status_code == 403
    east = target_body(period="2026-12", region="east")  # a director of the west sets none in the east
    assert (await leads.post("/v1/targets", json=east, headers=OTHER_DIRECTOR)).status_code == 403
    assert (await leads.post("/v1/targets", json=target_body(period="2026-12"), headers=REP)).status_code == 403
    for bad in [
        target_body(period="2026-13"),
        target_body(period="2026-Q5"),
        target_body(period="26-1"),
        target_body(reps=[]),
        target_body(reps=[{"rep_id": "rep-1"}, {"rep_id": "rep-1"}]),
        target_body(reps=[{"rep_id": "rep-1", "weight": "0"}]),
        target_body(amount="0"),
        target_body(amount=12.5),
    ]:
        response = await leads.post("/v1/targets", json=bad, headers=MANAGER)
        assert response.status_code == 422, (bad, response.text)
    assert await clean_db.fetchval("SELECT count(*) FROM leads.targets") == 4 + 3 + 4

    # Who sees which: a rep their own; the team's manager and the region's director all; others none.
    mine = (await leads.get("/v1/targets", params={"period": "2026-Q4"}, headers=REP)).json()["items"]
    assert [(t["scope"], t["owner_id"]) for t in mine] == [("rep", "rep-1")]
    assert len((await leads.get("/v1/targets", params={"period": "2026-Q4"}, headers=MANAGER)).json()["items"]) == 4
    assert len((await leads.get("/v1/targets", params={"period": "2026-Q4"}, headers=DIRECTOR)).json()["items"]) == 4
    for headers in (OTHER_MANAGER, OTHER_DIRECTOR):
        assert (await leads.get("/v1/targets", headers=headers)).json()["items"] == []
    rep1_target = reps[0]["id"]
    assert (await leads.get(f"/v1/targets/{rep1_target}", headers=REP)).status_code == 200
    for headers in (REP2, OTHER_MANAGER, OTHER_DIRECTOR):
        assert (await leads.get(f"/v1/targets/{rep1_target}", headers=headers)).status_code == 404
    assert (await leads.get(f"/v1/targets/{team['id']}", headers=REP)).status_code == 404


async def test_achievement_counts_each_signed_contract_once(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("leads")
    leads = await system.client("leads")
    team, rep1, rep2, _ = (await leads.post("/v1/targets", json=target_body(), headers=MANAGER)).json()
    events = [
        signed("rep-1", "10000.00", datetime(2026, 11, 20, 3, 0, tzinfo=UTC)),
        # 2026-10-01 00:30 in Shanghai: the first half hour of Q4 there.
        signed("rep-1", "2500.50", datetime(2026, 9, 30, 16, 30, tzinfo=UTC)),
        signed("rep-2", "7000.00", datetime(2026, 12, 31, 15, 59, tzinfo=UTC)),  # 23:59 on 31 Dec in Shanghai
        signed("rep-2", "999.00", datetime(2026, 12, 31, 16, 0, tzinfo=UTC)),  # already 2027 there
        signed("rep-1", "5000.00", datetime(2026, 11, 2, tzinfo=UTC), currency="USD"),  # another currency
        signed("rep-9", "8000.00", datetime(2026, 11, 2, tzinfo=UTC)),  # not in the team
    ]
    for event in events:
        await publish_raw(make_envelope(event, source="/salesline/contracts", subject=str(event.contract_id)), times=2)

    await wait_until(
        lambda: clean_db.fetchval("SELECT count(*) = 6 FROM leads.signed_contracts"), what="the signed contracts"
    )
    await asyncio.sleep(0.5)  # the redeliveries had their chance
    assert await clean_db.fetchval("SELECT count(*) FROM leads.signed_contracts") == 6
    got = {t["id"]: t for t in (await leads.get("/v1/targets", headers=MANAGER)).json()["items"]}
    assert (got[rep1["id"]]["achieved_amount"], got[rep1["id"]]["achievement_pct"]) == ("12500.50", "37.50")
    assert got[rep2["id"]]["achieved_amount"] == "7000.00"
    assert (got[team["id"]]["achieved_amount"], got[team["id"]]["achievement_pct"]) == ("19500.50", "19.50")
    single = (await leads.get(f"/v1/targets/{rep1['id']}", headers=REP)).json()
    assert single["achieved_amount"] == "12500.50"
