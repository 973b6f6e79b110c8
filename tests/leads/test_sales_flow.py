"""From lead to drafted contract through the real broker: a lead converted, quoted, accepted and
won in the leads service becomes exactly one contract draft in the contracts service, with the
quote's lines and the same totals to the cent."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from tests.conftest import System, wait_until
from tests.leads.test_quotes import opportunity_in_negotiation, quote_body
from tests.leads.test_sales_api import REP


async def test_a_won_opportunity_drafts_its_contract_with_the_same_totals(
    system: System, clean_db: asyncpg.Connection
) -> None:
    await system.start_worker("leads")
    await system.start_worker("contracts")
    leads, contracts = await system.client("leads"), await system.client("contracts")
    result = await opportunity_in_negotiation(leads)
    opportunity, account = result["opportunity"], result["account"]
    quote = (await leads.post(f"/v1/opportunities/{opportunity['id']}/quotes", json=quote_body(), headers=REP)).json()
    assert (await leads.post(f"/v1/quotes/{quote['id']}/accept", headers=REP)).status_code == 200
    won = await leads.post(f"/v1/opportunities/{opportunity['id']}/stage", json={"stage": "won"}, headers=REP)
    assert won.status_code == 200, won.text

    async def drafted() -> list[dict]:
        page = await contracts.get("/v1/contracts", params={"customer_id": account["customer_id"]}, headers=REP)
        return page.json()["items"]

    [contract] = await wait_until(drafted, what="the contract drafted from the won opportunity")
    assert (contract["opportunity_id"], contract["quote_id"], contract["owner_id"]) == (
        opportunity["id"],
        quote["id"],
        "rep-1",
    )
    assert (contract["subtotal_amount"], contract["discount_pct"], contract["total_amount"]) == (
        quote["subtotal_amount"],
        quote["extra_discount_pct"],
        quote["total_amount"],
    )
    assert [(x["sku"], Decimal(x["quantity"]), x["unit_price"]) for x in contract["lines"]] == [
        (x["sku"], Decimal(x["quantity"]), x["unit_price"]) for x in quote["lines"]
    ]
    assert contract["payment_terms"] == "30% prepayment, net 30"
