"""The customer timeline and the sales funnel, over HTTP and the bus against real PostgreSQL and
RabbitMQ: every timeline event is delivered twice and shows once; the funnel's counts, values,
conversion, time in stage and win rate, its filters and who sees which opportunities in it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import httpx

from shared.events import DeliveredItem, OrderDelivered, SurveyCompleted, TicketOpened, make_envelope
from tests.conftest import System, auth, wait_until
from tests.leads.test_leads_api import lead_body
from tests.leads.test_quotes import quote_body
from tests.leads.test_sales_api import MANAGER, OTHER_MANAGER, REP, REP2, assert_scoped, converted
from tests.leads.test_targets import signed
from tests.test_pipeline import publish_raw

T2_REP = auth("rep-7", "sales_rep", team="t2", region="east")


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


async def test_the_timeline_shows_activities_and_what_other_services_announced(
    system: System, clean_db: asyncpg.Connection
) -> None:
    await system.start_worker("leads")
    leads = await system.client("leads")
    account = (await converted(leads))["account"]
    customer = account["customer_id"]
    activity = await leads.post(
        f"/v1/accounts/{account['id']}/activities",
        json={"kind": "call", "occurred_at": at(21).isoformat(), "outcome": "interested", "notes": "call back"},
        headers=REP,
    )
    assert activity.status_code == 201, activity.text
    contract = signed("rep-1", "27443.56", at(22)).model_copy(update={"customer_id": customer})
    events = [
        contract,
        OrderDelivered(
            order_id=uuid.uuid4(),
            order_number="SO-2026-000007",
            customer_id=customer,
            customer_name=account["name"],
            owner_id="rep-1",
            items=(DeliveredItem(line_no=1, sku="PUMP-1", description="Pump", quantity=Decimal(20)),),
            delivered_at=at(23),
        ),
        TicketOpened(
            ticket_id=uuid.uuid4(),
            ticket_number="TK-2026-000003",
            channel="phone",
            ticket_type="repair",
            priority="high",
            group="field",
            subject="Pump leaks",
            customer_id=customer,
            opened_at=at(24),
        ),
        SurveyCompleted(
            survey_id=uuid.uuid4(),
            trigger="order.delivered",
            customer_id=customer,
            csat=4,
            nps=9,
            completed_at=at(24, 12),
        ),
        signed("rep-1", "1.00", at(25)).model_copy(update={"customer_id": "someone-else"}),
    ]
    for event in events:
        await publish_raw(make_envelope(event, source="/salesline/other", subject=customer), times=2)
    await wait_until(
        lambda: clean_db.fetchval("SELECT count(*) = 5 FROM leads.customer_events"), what="the timeline events"
    )
    await asyncio.sleep(0.5)  # the second deliveries had their chance
    assert await clean_db.fetchval("SELECT count(*) FROM leads.customer_events") == 5

    url = f"/v1/accounts/{account['id']}/timeline"
    entries, cursor = [], None
    while True:
        response = await leads.get(url, params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=MANAGER)
        assert response.status_code == 200, response.text
        entries += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            break
    assert [(e["source"], e["type"], e["reference"]) for e in entries] == [
        ("event", "survey.completed", str(events[3].survey_id)),
        ("event", "ticket.opened", "TK-2026-000003"),
        ("event", "order.delivered", "SO-2026-000007"),
        ("event", "contract.signed", "HT-2026-000042"),
        ("activity", "call", None),
    ]
    assert entries[0]["title"] == "Survey answered: CSAT 4, NPS 9"
    assert entries[3]["title"] == "Contract HT-2026-000042 signed: 27443.56 CNY"
    assert (entries[4]["title"], entries[4]["details"]["notes"]) == ("interested", "call back")
    await assert_scoped(leads, "GET", url)


async def _opportunity(leads: httpx.AsyncClient, headers: dict, i: int, amount: str) -> dict:
    lead = await leads.post(
        "/v1/leads",
        json=lead_body(company_name=f"Co {i}", phone=f"1390013901{i}", email=None, uscc=None),
        headers=headers,
    )
    response = await leads.post(f"/v1/leads/{lead.json()['id']}/convert", json={"amount": amount}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["opportunity"]


async def test_the_funnel(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    staying = await _opportunity(leads, REP, 1, "1000.00")
    lost = await _opportunity(leads, REP, 2, "2000.00")
    moved = await _opportunity(leads, REP, 3, "3000.00")
    won = await _opportunity(leads, REP, 4, "30000.00")
    await _opportunity(leads, T2_REP, 5, "5000.00")  # another team's

    async def stage(opportunity: dict, name: str, **extra) -> None:
        response = await leads.post(
            f"/v1/opportunities/{opportunity['id']}/stage", json={"stage": name, **extra}, headers=REP
        )
        assert response.status_code == 200, response.text

    await stage(lost, "lost", lost_reason="no budget")
    await stage(moved, "needs_analysis")
    for name in ("needs_analysis", "proposal", "negotiation"):
        await stage(won, name)
    quote = await leads.post(f"/v1/opportunities/{won['id']}/quotes", json=quote_body(), headers=REP)
    assert (await leads.post(f"/v1/quotes/{quote.json()['id']}/accept", headers=REP)).status_code == 200
    await stage(won, "won")
    # Every stay in qualification that ended lasted two hours, in needs analysis four.
    await clean_db.execute(
        """UPDATE leads.opportunity_stages SET left_at = entered_at + CASE stage WHEN 'qualification'
           THEN interval '2 hours' ELSE interval '4 hours' END WHERE left_at IS NOT NULL"""
    )

    response = await leads.get("/v1/sales-reports/funnel", params={"period": "2026-11"}, headers=MANAGER)
    assert response.status_code == 200, response.text
    report = response.json()
    by_stage = {s["stage"]: s for s in report["stages"]}
    assert list(by_stage) == ["qualification", "needs_analysis", "proposal", "negotiation", "won", "lost"]
    assert [(s["count"], s["value"], s["reached"]) for s in report["stages"]] == [
        (1, "1000.00", 4),
        (1, "3000.00", 2),
        (0, "0.00", 1),
        (0, "0.00", 1),
        (1, "27443.56", 1),  # won at the accepted quote's total
        (1, "2000.00", 1),
    ]
    assert [s["conversion_pct"] for s in report["stages"]] == ["50.00", "50.00", "100.00", "100.00", None, None]
    assert (by_stage["qualification"]["avg_hours_in_stage"], by_stage["needs_analysis"]["avg_hours_in_stage"]) == (
        "2.00",
        "4.00",
    )
    assert by_stage["won"]["avg_hours_in_stage"] is None  # nobody left it
    assert (report["win_rate_pct"], report["won_value"], report["lost_value"]) == ("50.00", "27443.56", "2000.00")
    assert staying["stage"] == "qualification"

    async def total(params: dict, headers: dict = MANAGER) -> int:
        response = await leads.get("/v1/sales-reports/funnel", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return sum(s["count"] for s in response.json()["stages"])

    assert await total({}) == 4
    assert await total({}, REP) == 4
    assert await total({}, REP2) == 0
    assert await total({}, OTHER_MANAGER) == 1
    assert await total({"owner_id": "rep-1"}, auth("admin-1", "admin")) == 4
    assert await total({}, auth("admin-1", "admin")) == 5
    assert await total({"team": "t2"}, auth("admin-1", "admin")) == 1
    assert await total({"region": "east", "source": "trade_show"}) == 4
    assert await total({"source": "referral"}) == 0
    assert await total({"period": "2026-10"}) == 0
    assert await total({"currency": "USD"}) == 0
    for bad in ({"period": "2026-13"}, {"period": "soon"}, {"source": "x"}, {"currency": "XYZ"}):
        response = await leads.get("/v1/sales-reports/funnel", params=bad, headers=MANAGER)
        assert response.status_code == 422, (bad, response.text)
    assert (await leads.get("/v1/sales-reports/funnel", headers=auth("x", "support_agent"))).status_code == 403
