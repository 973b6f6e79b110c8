"""Payments over HTTP and from the ERP: nothing above the outstanding amount, even concurrently."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from tests.conftest import System
from tests.orders.helpers import FINANCE, MANAGER
from tests.orders.test_orders_api import REP, decide, enter, erp, order_body, outbox_count


async def approved_order(system: System) -> tuple[httpx.AsyncClient, dict, str]:
    """An approved 3000.00 order (net 30), the orders client and the order's payments URL."""
    orders = await system.client("orders")
    order = await enter(orders, order_body())
    await decide(orders, order["id"], MANAGER)
    order = await decide(orders, order["id"], FINANCE)
    return orders, order, f"/v1/orders/{order['id']}/payments"


async def test_an_overpayment_is_a_problem_naming_the_outstanding_amount_and_writes_nothing(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders, order, payments_url = await approved_order(system)
    first = await orders.post(payments_url, json={"amount": "1000.00"}, headers=FINANCE)
    assert first.status_code == 201, first.text
    etag = first.headers["ETag"]

    refused = await orders.post(payments_url, json={"amount": "2000.01", "reference": "bank"}, headers=FINANCE)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["type"].endswith("/overpayment") and problem["title"] == "Payment exceeds the amount due"
    assert (problem["outstanding_amount"], problem["currency"]) == ("2000.00", "CNY")
    assert "2000.00 CNY outstanding" in problem["detail"] and order["number"] in problem["detail"]

    # From the ERP too: refused, and its webhook-id is not used up (the claim rolled back with it).
    callback = {"order_number": order["number"], "payment_id": str(uuid.uuid4()), "amount": "2500.00"}
    from_erp = await erp(orders, "payments", {**callback, "currency": "CNY"}, webhook_id="msg_overpaid")
    assert from_erp.status_code == 422 and from_erp.json()["outstanding_amount"] == "2000.00"
    assert await clean_db.fetchval("SELECT count(*) FROM orders.erp_webhooks WHERE webhook_id = 'msg_overpaid'") == 0

    now = await orders.get(f"/v1/orders/{order['id']}", headers=REP)
    assert now.headers["ETag"] == etag
    assert (now.json()["paid_amount"], now.json()["outstanding_amount"]) == ("1000.00", "2000.00")
    assert await outbox_count(clean_db, "payment.received.v1") == 1

    rest = await orders.post(payments_url, json={"amount": "2000.00"}, headers=FINANCE)
    assert rest.status_code == 201 and rest.json()["outstanding_amount"] == "0.00"
    settled = await orders.post(payments_url, json={"amount": "0.01"}, headers=FINANCE)
    assert settled.status_code == 422 and settled.json()["outstanding_amount"] == "0.00"
    assert await outbox_count(clean_db, "payment.received.v1") == 2


async def test_two_concurrent_payments_that_together_overpay_do_not_both_succeed(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders, order, payments_url = await approved_order(system)

    # The order row is locked for the change, so the second payment sees the first one's total.
    responses = await asyncio.gather(
        *(orders.post(payments_url, json={"amount": "2000.00"}, headers=FINANCE) for _ in range(2))
    )
    assert sorted(r.status_code for r in responses) == [201, 422], [r.text for r in responses]
    [refused] = [r for r in responses if r.status_code == 422]
    assert refused.json()["outstanding_amount"] == "1000.00"
    paid = (await orders.get(f"/v1/orders/{order['id']}", headers=REP)).json()
    assert (paid["paid_amount"], len(paid["payments"])) == ("2000.00", 1)
    assert await outbox_count(clean_db, "payment.received.v1") == 1
