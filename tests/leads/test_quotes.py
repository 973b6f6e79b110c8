"""Quotes over HTTP against real PostgreSQL: volume discounts from the price rules, the extra
discount limited by the shared discount authority policy, amounts that add up to the cent,
acceptance (once, before the validity date, one per opportunity), and winning the opportunity
on its accepted quote with ``opportunity.won`` carrying what contract drafting needs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx

from shared.policies import discount_authority
from tests.conftest import System, auth
from tests.leads.test_leads_api import outbox
from tests.leads.test_sales_api import DIRECTOR, MANAGER, REP, assert_scoped, converted

NEXT_MONTH = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
LINES = [
    {"sku": "PUMP-1", "name": "Pump", "quantity": "20", "unit_price": "1500.00"},  # PUMP-1 tier: 6 %
    {"sku": "SVC-1", "name": "Installation", "quantity": "1", "unit_price": "300.00"},  # no volume discount
    {"sku": "VALVE-9", "name": "Valve", "quantity": "12", "unit_price": "33.33"},  # default tier: 3 %
]


def quote_body(**overrides) -> dict:
    return {
        "lines": LINES,
        "valid_until": NEXT_MONTH,
        "extra_discount_pct": "5",
        "payment_terms": "30% prepayment, net 30",
        "delivery_address": "1 Century Ave, Shanghai",
        **overrides,
    }


async def opportunity_in_negotiation(leads: httpx.AsyncClient) -> dict:
    result = await converted(leads, amount="30000.00")
    url = f"/v1/opportunities/{result['opportunity']['id']}/stage"
    for stage in ("needs_analysis", "proposal", "negotiation"):
        assert (await leads.post(url, json={"stage": stage}, headers=REP)).status_code == 200
    return result


async def test_a_quote_is_priced_by_the_rules_and_adds_up_to_the_cent(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    opportunity = (await converted(leads))["opportunity"]
    response = await leads.post(f"/v1/opportunities/{opportunity['id']}/quotes", json=quote_body(), headers=REP)
    assert response.status_code == 201, response.text
    quote = response.json()
    assert response.headers["Location"] == f"/v1/quotes/{quote['id']}"
    assert quote["number"].startswith(f"QT-{datetime.now(UTC).year}-")
    assert [(x["volume_discount_pct"], x["list_amount"], x["amount"]) for x in quote["lines"]] == [
        ("6.00", "30000.00", "28200.00"),
        ("0.00", "300.00", "300.00"),
        ("3.00", "399.96", "387.96"),  # 399.96 * 0.97 = 387.9612
    ]
    assert (quote["subtotal_amount"], quote["extra_discount_pct"]) == ("28887.96", "5.00")
    assert (quote["total_amount"], quote["discount_amount"]) == ("27443.56", "1444.40")  # 28887.96 * 0.95 = 27443.562
    subtotal = sum(Decimal(x["amount"]) for x in quote["lines"])
    assert Decimal(quote["subtotal_amount"]) == subtotal
    assert Decimal(quote["total_amount"]) + Decimal(quote["discount_amount"]) == subtotal
    assert (quote["price_rules_version"], quote["discount_policy_version"]) == (1, discount_authority().version)
    assert (quote["currency"], quote["status"], quote["owner_id"]) == ("CNY", "draft", "rep-1")
    got = await leads.get(f"/v1/quotes/{quote['id']}", headers=MANAGER)
    assert got.status_code == 200 and got.json() == quote
    listed = (await leads.get("/v1/quotes", params={"opportunity_id": opportunity["id"]}, headers=REP)).json()
    assert [q["id"] for q in listed["items"]] == [quote["id"]]
    await assert_scoped(leads, "GET", f"/v1/quotes/{quote['id']}")
    await assert_scoped(leads, "POST", f"/v1/quotes/{quote['id']}/accept")
    await assert_scoped(leads, "POST", f"/v1/opportunities/{opportunity['id']}/quotes", json=quote_body())


async def test_the_extra_discount_is_limited_by_the_authors_authority(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    opportunity = (await converted(leads))["opportunity"]
    url = f"/v1/opportunities/{opportunity['id']}/quotes"
    for headers, pct, status in [
        (REP, "5.01", 422),  # a rep may give 5 %
        (MANAGER, "10.5", 422),  # a manager 10 %
        (DIRECTOR, "20.01", 422),  # a regional director 20 %
        (auth("x", "sales_rep", team="t1", region="east"), "100", 422),
    ]:
        response = await leads.post(url, json=quote_body(extra_discount_pct=pct), headers=headers)
        assert response.status_code in (status, 404), response.text
    assert await clean_db.fetchval("SELECT count(*) FROM leads.quotes") == 0
    for headers, pct in [(REP, "5"), (MANAGER, "10"), (DIRECTOR, "20")]:
        response = await leads.post(url, json=quote_body(extra_discount_pct=pct), headers=headers)
        assert response.status_code == 201, response.text
    for bad in [
        quote_body(lines=[]),
        quote_body(valid_until=(date.today() - timedelta(days=1)).isoformat()),
        quote_body(lines=[{**LINES[0], "quantity": "0"}]),
        quote_body(lines=[{**LINES[0], "unit_price": 1.5}]),
        quote_body(extra_discount_pct="-1"),
        quote_body(currency="XYZ"),
        quote_body(lines=[{**LINES[0], "quantity": "1000000000", "unit_price": "999999999999.99"}]),  # overflow
        quote_body(lines=[{**LINES[0], "quantity": "0.0001"}]),
    ]:
        assert (await leads.post(url, json=bad, headers=REP)).status_code == 422, bad
    assert await clean_db.fetchval("SELECT count(*) FROM leads.quotes") == 3


async def test_winning_on_the_accepted_quote_announces_the_contract_to_draft(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    result = await opportunity_in_negotiation(leads)
    opportunity, account, contact = result["opportunity"], result["account"], result["contact"]
    quotes_url = f"/v1/opportunities/{opportunity['id']}/quotes"
    first = (await leads.post(quotes_url, json=quote_body(), headers=REP)).json()
    other = (await leads.post(quotes_url, json=quote_body(extra_discount_pct="0"), headers=REP)).json()
    accept = f"/v1/quotes/{first['id']}/accept"
    assert (await leads.post(accept, headers={**REP, "If-Match": '"5"'})).status_code == 412
    response = await leads.post(accept, headers={**REP, "If-Match": '"0"'})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["accepted_by"]) == ("accepted", "rep-1")
    assert (await leads.post(accept, headers=REP)).status_code == 409  # accepted already
    assert (await leads.post(f"/v1/quotes/{other['id']}/accept", headers=REP)).status_code == 409  # one per deal
    [accepted] = await outbox(clean_db, "quote.accepted.v1")
    assert (accepted["data"]["quote_number"], accepted["data"]["total_amount"]) == (first["number"], "27443.56")

    won = await leads.post(f"/v1/opportunities/{opportunity['id']}/stage", json={"stage": "won"}, headers=REP)
    assert won.status_code == 200, won.text
    assert (won.json()["stage"], won.json()["amount"], won.json()["accepted_quote_id"]) == (
        "won",
        "27443.56",
        first["id"],
    )
    [event] = await outbox(clean_db, "opportunity.won.v1")
    data = event["data"]
    assert event["subject"] == opportunity["id"]
    assert (data["quote_id"], data["quote_number"], data["account_id"], data["customer_name"]) == (
        first["id"],
        first["number"],
        account["customer_id"],
        account["name"],
    )
    assert data["contact"] == {"name": contact["name"], "email": contact["email"], "phone": contact["phone"]}
    assert (data["owner_id"], data["region"], data["currency"]) == ("rep-1", "east", "CNY")
    assert (data["subtotal_amount"], data["discount_pct"], data["total_amount"]) == ("28887.96", "5.00", "27443.56")
    assert (data["payment_terms"], data["delivery_address"]) == ("30% prepayment, net 30", "1 Century Ave, Shanghai")
    assert [(x["line_no"], x["sku"], x["description"], x["discount_pct"], x["amount"]) for x in data["lines"]] == [
        (1, "PUMP-1", "Pump", "6.00", "28200.00"),
        (2, "SVC-1", "Installation", "0.00", "300.00"),
        (3, "VALVE-9", "Valve", "3.00", "387.96"),
    ]
    assert sum(Decimal(x["amount"]) for x in data["lines"]) == Decimal(data["subtotal_amount"])
    # Won is final: no more stages, quotes or acceptances.
    stage_url = f"/v1/opportunities/{opportunity['id']}/stage"
    assert (await leads.post(stage_url, json={"stage": "lost", "lost_reason": "x"}, headers=REP)).status_code == 409
    assert (await leads.post(quotes_url, json=quote_body(), headers=REP)).status_code == 409
    assert (await leads.post(f"/v1/quotes/{other['id']}/accept", headers=REP)).status_code == 409
    assert len(await outbox(clean_db, "opportunity.won.v1")) == 1


async def test_an_expired_quote_cannot_be_accepted(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    opportunity = (await opportunity_in_negotiation(leads))["opportunity"]
    quote = (await leads.post(f"/v1/opportunities/{opportunity['id']}/quotes", json=quote_body(), headers=REP)).json()
    await clean_db.execute("UPDATE leads.quotes SET valid_until = current_date - 1")
    response = await leads.post(f"/v1/quotes/{quote['id']}/accept", headers=REP)
    assert response.status_code == 409 and "expired" in response.json()["detail"]
    won = await leads.post(f"/v1/opportunities/{opportunity['id']}/stage", json={"stage": "won"}, headers=REP)
    assert won.status_code == 409  # no accepted quote
    assert await outbox(clean_db, "quote.accepted.v1") == [] and await outbox(clean_db, "opportunity.won.v1") == []
