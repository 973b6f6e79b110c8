"""Drafting: a won opportunity drafts exactly one contract (delivered twice, and re-published
under a new id); contract numbers stay unique under 50 concurrent drafts."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from shared.events import ContactInfo, ContractLine, OpportunityWon, make_envelope
from tests.conftest import System, wait_until
from tests.contracts.test_review_api import REP, events
from tests.helpers import contract_payload, count
from tests.test_pipeline import publish_raw


def opportunity_won(**overrides) -> OpportunityWon:
    fields = {
        "opportunity_id": uuid.uuid4(),
        "quote_id": uuid.uuid4(),
        "quote_number": "QT-2026-000007",
        "account_id": "acme",
        "customer_name": "上海艾克米有限公司",
        "contact": ContactInfo(name="Li Lei", email="li@example.com"),
        "owner_id": "rep-1",
        "region": "east",
        "currency": "CNY",
        "lines": (
            ContractLine(
                line_no=2,
                sku="SVC-1",
                description="Install",
                quantity=Decimal(1),
                unit_price=Decimal(300),
                amount=Decimal(300),
            ),
            ContractLine(
                line_no=1,
                sku="PUMP-1",
                description="Pump",
                quantity=Decimal(20),
                unit_price=Decimal(1500),
                discount_pct=Decimal(6),
                amount=Decimal("28200.00"),
                warranty_months=12,
            ),
        ),
        "subtotal_amount": Decimal("28500.00"),
        "discount_pct": Decimal(2),
        "total_amount": Decimal("27930.00"),
        "payment_terms": "prepayment 30 %, rest net 30",
        "delivery_address": "1 Century Ave, Shanghai",
        "requested_delivery_date": "2026-12-20",
        "won_at": datetime(2026, 11, 25, 6, 0, tzinfo=UTC),
    }
    return OpportunityWon(**{**fields, **overrides})


async def test_a_won_opportunity_drafts_exactly_one_contract(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("contracts")
    won = opportunity_won()
    envelope = make_envelope(won, source="/salesline/leads", subject=str(won.opportunity_id))
    await publish_raw(envelope, times=2)  # delivered twice

    async def drafted() -> bool:
        return await count(clean_db, "SELECT count(*) FROM contracts.contracts") == 1

    await wait_until(drafted, what="the contract drafted from the won opportunity")
    # The same opportunity re-published under a new event id (a producer bug): the state guard holds.
    await publish_raw(make_envelope(won, source="/salesline/leads", subject=str(won.opportunity_id)))
    await wait_until(lambda: count(clean_db, "SELECT count(*) FROM contracts.inbox"), what="the second event handled")
    await asyncio.sleep(1.0)
    assert await count(clean_db, "SELECT count(*) FROM contracts.contracts") == 1
    assert await count(clean_db, "SELECT count(*) FROM contracts.inbox") == 2

    contracts = await system.client("contracts")
    listed = await contracts.get("/v1/contracts", params={"opportunity_id": str(won.opportunity_id)}, headers=REP)
    [contract] = listed.json()["items"]
    other = await contracts.get("/v1/contracts", params={"opportunity_id": str(uuid.uuid4())}, headers=REP)
    assert other.json()["items"] == []
    assert contract["opportunity_id"] == str(won.opportunity_id) and contract["quote_id"] == str(won.quote_id)
    assert (contract["customer_id"], contract["customer_name"], contract["owner_id"], contract["region"]) == (
        "acme",
        "上海艾克米有限公司",
        "rep-1",
        "east",
    )
    assert [line["sku"] for line in contract["lines"]] == ["PUMP-1", "SVC-1"]  # in quote line order
    assert [line["amount"] for line in contract["lines"]] == ["28200.00", "300.00"]
    assert (contract["subtotal_amount"], contract["total_amount"]) == ("28500.00", "27930.00")
    assert contract["payment_terms"] == "prepayment 30 %, rest net 30" and contract["status"] == "draft"
    assert contract["contact"]["name"] == "Li Lei" and contract["document_version"] == 1
    (event,) = await events(clean_db, "contract.drafted")
    assert event["contract_id"] == contract["id"] and event["total_amount"] == "27930.00"


async def test_contract_numbers_are_unique_under_50_concurrent_drafts(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    responses = await asyncio.gather(
        *(contracts.post("/v1/contracts", json=contract_payload(f"c{i}"), headers=REP) for i in range(50))
    )
    assert [r.status_code for r in responses] == [201] * 50
    numbers = [r.json()["number"] for r in responses]
    year = datetime.now(UTC).year
    assert len(set(numbers)) == 50 and all(re.fullmatch(rf"HT-{year}-\d{{6}}", n) for n in numbers)
    assert await count(clean_db, "SELECT count(DISTINCT number) FROM contracts.contracts") == 50
