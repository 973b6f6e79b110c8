"""The orders service over HTTP, the ERP callbacks and the bus, against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook

from services.orders.config import DEV_ERP_WEBHOOK_SECRET
from shared.events import ContractLine, ContractSigned, make_envelope
from shared.policies import discount_authority
from tests.conftest import System, auth, wait_until
from tests.orders.helpers import DIRECTOR, FINANCE, MANAGER, approve_with_handlers
from tests.test_pipeline import publish_raw

REP = auth("rep-1", "sales_rep")
OTHER_REP = auth("rep-2", "sales_rep")
ERP = auth("erp", "integration")


def order_body(customer: str = "acme", *, discount: str = "0", terms: str = "net 30", quantity: str = "2") -> dict:
    qty, price = Decimal(quantity), Decimal("1500.00")
    amount = (qty * price * (100 - Decimal(discount)) / 100).quantize(Decimal("0.01"))
    return {
        "customer_id": customer,
        "customer_name": f"{customer} Ltd.",
        "contact": {"name": "Li Lei", "email": "li@example.com"},
        "region": "east",
        "currency": "CNY",
        "lines": [
            {
                "sku": "PUMP-1",
                "description": "Pump",
                "quantity": quantity,
                "unit_price": "1500.00",
                "discount_pct": discount,
                "warranty_months": 12,
                "amount": str(amount),
            }
        ],
        "total_amount": str(amount),
        "payment_terms": terms,
        "payment_method": "bank_transfer",
        "delivery_address": "1 Century Ave, Shanghai",
        "requested_delivery_date": "2026-12-20",
    }


async def enter(orders: httpx.AsyncClient, body: dict, headers: dict = REP) -> dict:
    response = await orders.post("/v1/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def decide(orders: httpx.AsyncClient, order_id: str, headers: dict, action: str = "approve", **body) -> dict:
    response = await orders.post(f"/v1/orders/{order_id}/{action}", headers=headers, json=body or None)
    assert response.status_code == 200, response.text
    return response.json()


def signed(payload: dict, *, webhook_id: str | None = None, at: datetime | None = None) -> tuple[bytes, dict]:
    body = json.dumps(payload)
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(DEV_ERP_WEBHOOK_SECRET).sign(webhook_id, at, body)
    headers = {
        **ERP,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return body.encode(), headers


async def erp(orders: httpx.AsyncClient, path: str, payload: dict, **kw) -> httpx.Response:
    body, headers = signed(payload, **kw)
    return await orders.post(f"/v1/erp/{path}", content=body, headers=headers)


async def outbox_count(db: asyncpg.Connection, event_type: str) -> int:
    return await db.fetchval("SELECT count(*) FROM orders.outbox WHERE event_type = $1", event_type)


async def test_contract_signed_twice_enters_one_order_at_the_approval_stage(
    system: System, clean_db: asyncpg.Connection
) -> None:
    await system.start_worker("orders")
    event = ContractSigned(
        contract_id=uuid.uuid4(),
        contract_number="HT-2026-000001",
        customer_id="acme",
        customer_name="ACME",
        owner_id="rep-1",
        region="east",
        currency="CNY",
        lines=(
            ContractLine(
                line_no=1,
                sku="P",
                description="Pump",
                quantity=Decimal(2),
                unit_price=Decimal(1000),
                discount_pct=Decimal(12),
                amount=Decimal("1760.00"),
                warranty_months=24,
            ),
        ),
        subtotal_amount=Decimal("1760.00"),
        total_amount=Decimal("1760.00"),
        payment_terms="net 30",
        signed_at=datetime.now(UTC),
    )
    envelope = make_envelope(event, source="/salesline/contracts", subject=str(event.contract_id))
    await publish_raw(envelope, times=2)
    await wait_until(lambda: clean_db.fetchval("SELECT count(*) FROM orders.orders"), what="the order")
    # The same contract's signing published again under another event id: the state guard holds.
    again = make_envelope(event, source="/salesline/contracts", subject=str(event.contract_id))
    await publish_raw(again)
    await wait_until(
        lambda: clean_db.fetchval("SELECT count(*) FROM orders.inbox WHERE event_id = $1", again.id),
        what="the second envelope consumed",
    )
    await asyncio.sleep(0.5)
    assert await clean_db.fetchval("SELECT count(*) FROM orders.orders") == 1
    assert await outbox_count(clean_db, "order.created.v1") == 1
    orders = await system.client("orders")
    [order] = (await orders.get("/v1/orders", params={"contract_id": str(event.contract_id)}, headers=REP)).json()[
        "items"
    ]
    assert order["status"] == "pending_approval" and order["pending_role"] == "sales_manager"
    assert order["discount_pct"] == "12.00"
    discount_step = order["approvals"][1]
    assert discount_step["role"] == "regional_director" and discount_step["status"] == "waiting"
    assert "exceeds sales_rep authority" in discount_step["rule"]


async def test_hand_entry_is_validated_idempotent_and_writes_nothing_when_wrong(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    headers = {**REP, "Idempotency-Key": "order-entry-1"}
    first = await orders.post("/v1/orders", json=order_body(), headers=headers)
    again = await orders.post("/v1/orders", json=order_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    order = first.json()
    assert order["number"].startswith("SO-") and order["status"] == "pending_approval"
    assert order["owner_id"] == "rep-1" and order["total_amount"] == "3000.00"
    assert first.headers["Location"] == f"/v1/orders/{order['id']}"

    bad_total = order_body()
    bad_total["total_amount"] = "3000.01"
    bad_line = order_body()
    bad_line["lines"][0]["amount"] = "2999.99"
    zero_quantity = order_body(quantity="0")
    unknown_currency = {**order_body(), "currency": "XYZ"}
    float_price = order_body()
    float_price["lines"][0]["unit_price"] = 1500.5
    for body in (bad_total, bad_line, zero_quantity, unknown_currency, float_price, {**order_body(), "x": 1}):
        response = await orders.post("/v1/orders", json=body, headers=REP)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await clean_db.fetchval("SELECT count(*) FROM orders.orders") == 1
    assert await outbox_count(clean_db, "order.created.v1") == 1
    assert (await orders.get(f"/v1/orders/{order['id']}", headers=OTHER_REP)).status_code == 404


async def test_discount_beyond_authority_goes_to_the_regional_director(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    order = await enter(orders, order_body(discount="15"))
    url = f"/v1/orders/{order['id']}/approve"
    # Not an approver at all, or the wrong level: refused, nothing changes.
    assert (await orders.post(url, headers=REP)).status_code == 403
    assert (await orders.post(url, headers=auth("agent", "support_agent"))).status_code == 403
    assert (await orders.post(url, headers=FINANCE)).status_code == 403
    queue = (await orders.get("/v1/approvals", params={"assignee": "me"}, headers=MANAGER)).json()["items"]
    assert [o["id"] for o in queue] == [order["id"]]

    order = await decide(orders, order["id"], MANAGER)
    assert order["pending_role"] == "regional_director"
    assert (await orders.get("/v1/approvals", headers=MANAGER)).json()["items"] == []
    assert [o["id"] for o in (await orders.get("/v1/approvals", headers=DIRECTOR)).json()["items"]] == [order["id"]]
    west = auth("director-2", "regional_director", region="west")
    assert (await orders.get("/v1/approvals", headers=west)).json()["items"] == []
    assert (await orders.post(url, headers=west)).status_code == 403
    assert (await orders.post(url, headers=FINANCE)).status_code == 403

    order = await decide(orders, order["id"], DIRECTOR)
    assert order["pending_role"] == "finance"
    order = await decide(orders, order["id"], FINANCE)
    assert order["status"] == "released" and order["pending_role"] is None
    manager, director, finance = order["approvals"]
    version = discount_authority().version
    assert (manager["decided_by"], manager["decided_role"], manager["policy_version"]) == (
        "manager-1",
        "sales_manager",
        version,
    )
    assert director["decided_role"] == "regional_director" and director["figures"]["discount_pct"] == "15.00"
    assert director["figures"]["approver_authority_pct"] == "20"
    assert finance["figures"]["order_amount"] == "2550.00" and finance["figures"]["limit_source"] == "default"
    assert await outbox_count(clean_db, "order.approved.v1") == 1
    assert (await orders.post(url, headers=FINANCE)).status_code == 409


async def test_no_discount_skips_the_director_level_with_its_rule(system: System, clean_db: asyncpg.Connection) -> None:
    orders = await system.client("orders")
    order = await enter(orders, order_body())
    skipped = order["approvals"][1]
    assert skipped["status"] == "skipped" and "within the owner's authority" in skipped["rule"]
    assert skipped["policy_version"] == discount_authority().version
    order = await decide(orders, order["id"], MANAGER)
    assert order["pending_role"] == "finance"


async def test_credit_hold_shows_the_figures_and_a_raised_limit_from_the_erp_releases_it(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    limit = await orders.put(
        "/v1/credit-limits/acme", json={"credit_limit": "5000.00", "currency": "CNY"}, headers=FINANCE
    )
    assert limit.status_code == 204, limit.text
    assert (
        await orders.put("/v1/credit-limits/acme", json={"credit_limit": "1", "currency": "CNY"}, headers=REP)
    ).status_code == 403
    first = await enter(orders, order_body())  # 3000.00
    await decide(orders, first["id"], MANAGER)
    await decide(orders, first["id"], FINANCE)
    second = await enter(orders, order_body())  # 3000 outstanding + 3000 > 5000
    held = await decide(orders, second["id"], MANAGER)
    assert held["status"] == "credit_hold" and held["credit_hold"] and held["pending_role"] is None
    assert held["approvals"][2]["figures"] == {
        "credit_limit": "5000.00",
        "outstanding_balance": "3000.00",
        "order_amount": "3000.00",
        "exposure": "6000.00",
        "limit_source": "customer",
    }
    assert (await orders.post(f"/v1/orders/{second['id']}/approve", headers=FINANCE)).status_code == 409

    response = await erp(orders, "credit-limits", {"customer_id": "acme", "credit_limit": "8000.00", "currency": "CNY"})
    assert response.status_code == 200 and response.json()["applied"] is True, response.text
    released = (await orders.get(f"/v1/orders/{second['id']}", headers=FINANCE)).json()
    assert released["status"] == "pending_approval" and released["pending_role"] == "finance"
    approved = await decide(orders, second["id"], FINANCE)
    assert approved["status"] == "released" and approved["approvals"][2]["figures"]["credit_limit"] == "8000.00"


async def test_rejection_returns_to_the_owner_and_changes_are_recorded(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    order = await enter(orders, order_body())
    missing_reason = await orders.post(f"/v1/orders/{order['id']}/reject", headers=MANAGER, json={"reason": ""})
    assert missing_reason.status_code == 422
    order = await decide(orders, order["id"], MANAGER, "reject", reason="the delivery address is incomplete")
    assert order["status"] == "returned" and order["approvals"][0]["reason"] == "the delivery address is incomplete"
    assert await outbox_count(clean_db, "order.rejected.v1") == 1

    change = await orders.post(
        f"/v1/orders/{order['id']}/changes",
        json={"delivery_address": "1 Century Ave, Pudong, Shanghai 200120", "reason": "completed"},
        headers={**REP, "If-Match": f'"{order["version"]}"'},
    )
    assert change.status_code == 200, change.text
    order = change.json()
    assert order["status"] == "pending_approval" and order["approval_round"] == 2
    assert order["pending_role"] == "sales_manager"
    await decide(orders, order["id"], MANAGER)
    order = await decide(orders, order["id"], FINANCE)

    # After approval a change is a change request: nothing changes until it is approved.
    new_lines = order_body(quantity="3")
    request = await orders.post(
        f"/v1/orders/{order['id']}/changes",
        json={"lines": new_lines["lines"], "total_amount": new_lines["total_amount"], "reason": "one more pump"},
        headers=REP,
    )
    assert request.status_code == 200, request.text
    order = request.json()
    assert order["total_amount"] == "3000.00" and order["pending_change"]["reason"] == "one more pump"
    assert order["status"] == "released" and order["pending_role"] == "sales_manager"
    await decide(orders, order["id"], MANAGER)
    order = await decide(orders, order["id"], FINANCE)
    assert order["total_amount"] == "4500.00" and order["pending_change"] is None
    kinds = [
        json.loads(r["envelope"])["data"]["kind"]
        for r in await clean_db.fetch(
            "SELECT envelope FROM orders.outbox WHERE event_type = 'order.changed.v1' ORDER BY id"
        )
    ]
    assert kinds == ["amended", "change_requested", "change_applied"]


async def test_prepayment_gates_shipping_and_partial_deliveries_end_in_one_order_delivered(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    order = await enter(orders, order_body(terms="30% prepayment, balance net 30", quantity="3"))
    await decide(orders, order["id"], MANAGER)
    order = await decide(orders, order["id"], FINANCE)
    assert order["status"] == "awaiting_prepayment" and order["prepayment_required"] == "1350.00"
    shipments_url = f"/v1/orders/{order['id']}/shipments"
    blocked = await orders.post(shipments_url, json={"items": [{"line_no": 1, "quantity": "1"}]}, headers=MANAGER)
    assert blocked.status_code == 409 and "prepayment" in blocked.json()["detail"]

    paid = await erp(
        orders,
        "payments",
        {"order_number": order["number"], "payment_id": str(uuid.uuid4()), "amount": "1350.00", "currency": "CNY"},
    )
    assert paid.status_code == 200, paid.text
    assert (await orders.get(f"/v1/orders/{order['id']}", headers=REP)).json()["status"] == "released"
    assert await outbox_count(clean_db, "payment.received.v1") == 1

    first = await orders.post(
        shipments_url, json={"items": [{"line_no": 1, "quantity": "2"}], "carrier": "SF Express"}, headers=MANAGER
    )
    assert first.status_code == 201, first.text
    first_id = first.json()["shipments"][0]["id"]
    assert first.headers["Location"].endswith(first_id)
    too_many = await orders.post(shipments_url, json={"items": [{"line_no": 1, "quantity": "2"}]}, headers=MANAGER)
    assert too_many.status_code == 422
    assert (await orders.post(f"{shipments_url}/{first_id}/pick", headers=MANAGER)).status_code == 200
    dispatched = await erp(
        orders,
        "shipments/dispatched",
        {
            "order_number": order["number"],
            "shipment_id": first_id,
            "tracking_number": "SF100",
            "lines": [{"line_no": 1, "serial_numbers": ["SN-1", "SN-2"]}],
        },
    )
    assert dispatched.status_code == 200, dispatched.text
    delay = await orders.post(
        f"/v1/orders/{order['id']}/delay",
        json={"promised_date": "2026-12-28", "reason": "customs inspection", "shipment_id": first_id},
        headers=MANAGER,
    )
    assert delay.status_code == 200 and delay.json()["promised_delivery_date"] == "2026-12-28"
    delivered_callback = {"order_number": order["number"], "shipment_id": first_id}
    response = await erp(orders, "shipments/delivered", delivered_callback, webhook_id="msg_delivered_1")
    assert response.json()["applied"] is True
    order = (await orders.get(f"/v1/orders/{order['id']}", headers=REP)).json()
    assert order["status"] == "partially_delivered"
    assert await outbox_count(clean_db, "order.delivered.v1") == 0

    # The same callback again (the ERP retried): its effect happened once.
    replay = await erp(orders, "shipments/delivered", delivered_callback, webhook_id="msg_delivered_1")
    assert replay.status_code == 200 and replay.json()["applied"] is False

    second = await orders.post(shipments_url, json={"items": [{"line_no": 1, "quantity": "1"}]}, headers=MANAGER)
    second_id = second.json()["shipments"][1]["id"]
    shipped = await orders.post(
        f"{shipments_url}/{second_id}/ship",
        json={
            "carrier": "SF Express",
            "tracking_number": "SF101",
            "lines": [{"line_no": 1, "serial_numbers": ["SN-3"]}],
        },
        headers=MANAGER,
    )
    assert shipped.status_code == 200, shipped.text
    done = await orders.post(f"{shipments_url}/{second_id}/deliver", headers=MANAGER)
    assert done.status_code == 200 and done.json()["status"] == "delivered"
    assert await outbox_count(clean_db, "order.shipped.v1") == 2
    assert await outbox_count(clean_db, "order.delayed.v1") == 1
    [row] = await clean_db.fetch("SELECT envelope FROM orders.outbox WHERE event_type = 'order.delivered.v1'")
    data = json.loads(row["envelope"])["data"]
    assert data["items"][0]["serial_numbers"] == ["SN-1", "SN-2", "SN-3"] and data["items"][0]["warranty_months"] == 12
    assert data["contact"]["name"] == "Li Lei" and data["owner_id"] == "rep-1"

    invoice = await erp(
        orders, "invoices", {"order_number": order["number"], "invoice_number": "INV-1", "amount": "4500.00"}
    )
    assert invoice.status_code == 200 and await outbox_count(clean_db, "invoice.issued.v1") == 1
    payment = await orders.post(
        f"/v1/orders/{order['id']}/payments", json={"amount": "3150.00", "reference": "bank"}, headers=FINANCE
    )
    assert payment.status_code == 201 and payment.json()["status"] == "completed"
    assert payment.json()["outstanding_amount"] == "0.00"


async def test_erp_signatures_tampered_stale_missing_and_replayed(system: System, clean_db: asyncpg.Connection) -> None:
    orders = await system.client("orders")
    payload = {"customer_id": "acme", "credit_limit": "9000.00", "currency": "CNY"}
    body, headers = signed(payload)
    tampered = body.replace(b"9000.00", b"9999999.00")
    for content, hdrs in [
        (tampered, headers),
        (body, {**headers, "webhook-signature": "v1,AAAA"}),
        (body, {k: v for k, v in headers.items() if k != "webhook-signature"}),
        (*signed(payload, at=datetime.now(UTC) - timedelta(minutes=6)),),
        (*signed(payload, at=datetime.now(UTC) + timedelta(minutes=6)),),
    ]:
        response = await orders.post("/v1/erp/credit-limits", content=content, headers=hdrs)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    # A valid signature without the ERP's token is refused too.
    no_token = {k: v for k, v in headers.items() if k != "Authorization"}
    assert (await orders.post("/v1/erp/credit-limits", content=body, headers=no_token)).status_code == 401
    assert await clean_db.fetchval("SELECT count(*) FROM orders.erp_webhooks") == 0
    assert await clean_db.fetchval("SELECT count(*) FROM orders.credit_limits") == 0

    # Signed but malformed: a 422 that writes nothing (the id stays free for a corrected retry).
    bad = await erp(orders, "credit-limits", {"customer_id": "acme", "credit_limit": 1.5, "currency": "CNY"})
    assert bad.status_code == 422
    assert await clean_db.fetchval("SELECT count(*) FROM orders.erp_webhooks") == 0

    good = await orders.post("/v1/erp/credit-limits", content=body, headers=headers)
    replay = await orders.post("/v1/erp/credit-limits", content=body, headers=headers)
    assert good.json()["applied"] is True and replay.json()["applied"] is False
    assert await clean_db.fetchval("SELECT credit_limit FROM orders.credit_limits") == Decimal("9000.00")
    assert await clean_db.fetchval("SELECT count(*) FROM orders.erp_webhooks") == 1
    unknown = await erp(orders, "invoices", {"order_number": "SO-1999-000001", "invoice_number": "I", "amount": "1"})
    assert unknown.status_code == 404
    assert await clean_db.fetchval("SELECT count(*) FROM orders.erp_webhooks") == 1


async def test_cancellation_before_shipping_with_a_reason(system: System, clean_db: asyncpg.Connection) -> None:
    orders = await system.client("orders")
    order = await enter(orders, order_body())
    assert (
        await orders.post(f"/v1/orders/{order['id']}/cancel", headers=OTHER_REP, json={"reason": "x"})
    ).status_code == 404
    cancelled = await decide(orders, order["id"], REP, "cancel", reason="customer withdrew")
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_reason"] == "customer withdrew"
    assert await outbox_count(clean_db, "order.cancelled.v1") == 1
    assert (await orders.post(f"/v1/orders/{order['id']}/approve", headers=MANAGER)).status_code == 409


async def test_reports_cycle_times_holds_on_time_delivery_and_receivables(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    await orders.put("/v1/credit-limits/small", json={"credit_limit": "100.00", "currency": "CNY"}, headers=FINANCE)
    delivered = await enter(orders, order_body("big"))
    await decide(orders, delivered["id"], MANAGER)
    await decide(orders, delivered["id"], FINANCE)
    shortcut = await orders.post(f"/v1/orders/{delivered['id']}/deliver", headers=MANAGER)
    assert shortcut.status_code == 200 and shortcut.json()["status"] == "delivered", shortcut.text
    held = await enter(orders, order_body("small"))
    await decide(orders, held["id"], MANAGER)

    assert (await orders.get("/v1/order-reports/receivables", headers=REP)).status_code == 403
    cycle = (await orders.get("/v1/order-reports/approval-cycle-times", headers=MANAGER)).json()
    by_level = {level["level"]: level for level in cycle["levels"]}
    assert by_level["sales_manager_review"]["decisions"] == 2 and by_level["finance"]["decisions"] == 1
    assert "discount_authority" not in by_level  # skipped levels are not decisions
    holds = (await orders.get("/v1/order-reports/credit-holds", headers=FINANCE)).json()["items"]
    assert [o["id"] for o in holds] == [held["id"]]
    on_time = (await orders.get("/v1/order-reports/on-time-delivery", headers=MANAGER)).json()
    assert (on_time["delivered"], on_time["with_requested_date"], on_time["on_time"]) == (1, 1, 1)
    assert on_time["on_time_rate"] == "1.0000"
    bad_period = await orders.get(
        "/v1/order-reports/on-time-delivery",
        params={"since": "2026-12-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
        headers=MANAGER,
    )
    assert bad_period.status_code == 400
    [receivable] = (await orders.get("/v1/order-reports/receivables", headers=FINANCE)).json()["items"]
    assert receivable["customer_id"] == "big" and receivable["outstanding"] == "3000.00"
    assert receivable["not_invoiced"] == "3000.00" and receivable["invoiced"] == "0.00"


async def test_receivables_are_aged_by_invoice_due_date_and_paginated(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    big = await enter(orders, order_body("big"))  # 3000.00
    other = await enter(orders, order_body("other", quantity="3"))  # 4500.00
    await enter(orders, order_body("unapproved"))
    for order in (big, other):
        await decide(orders, order["id"], MANAGER)
        await decide(orders, order["id"], FINANCE)
    for number, amount, days in (("INV-A", "1000.00", -100), ("INV-B", "1000.00", -45), ("INV-C", "500.00", 10)):
        due = (today + timedelta(days=days)).isoformat()
        invoice = {"number": number, "amount": amount, "due_date": due}
        response = await orders.post(f"/v1/orders/{big['id']}/invoices", json=invoice, headers=FINANCE)
        assert response.status_code == 201, response.text
    # Settles INV-A and 200.00 of INV-B: payments go to the earliest due invoices first.
    await orders.post(f"/v1/orders/{big['id']}/payments", json={"amount": "1200.00"}, headers=FINANCE)
    no_due_date = {"order_number": other["number"], "invoice_number": "INV-D", "amount": "4500.00"}
    assert (await erp(orders, "invoices", no_due_date)).status_code == 200

    url = "/v1/order-reports/receivables"
    first = await orders.get(url, params={"limit": 1}, headers=FINANCE)
    assert first.status_code == 200, first.text
    [largest] = first.json()["items"]
    assert (largest["customer_id"], largest["outstanding"], largest["not_due"]) == ("other", "4500.00", "4500.00")
    assert 'rel="next"' in first.headers["Link"]
    second = (await orders.get(url, params={"limit": 1, "cursor": first.json()["next_cursor"]}, headers=FINANCE)).json()
    assert second["next_cursor"] is None
    assert second["items"] == [
        {
            "customer_id": "big",
            "currency": "CNY",
            "outstanding": "1800.00",
            "invoiced": "1300.00",
            "not_due": "500.00",
            "days_1_30": "0.00",
            "days_31_60": "800.00",
            "days_61_90": "0.00",
            "days_over_90": "0.00",
            "not_invoiced": "500.00",
        }
    ]
    only = (await orders.get(url, params={"customer_id": "big"}, headers=FINANCE)).json()["items"]
    assert [r["customer_id"] for r in only] == ["big"]
    assert (await orders.get(url, params={"cursor": "made-up"}, headers=FINANCE)).status_code == 400
    assert (await orders.get(url, headers=MANAGER)).status_code == 403


async def test_remembered_webhook_ids_expire_after_the_retention(system: System, clean_db: asyncpg.Connection) -> None:
    orders = await system.client("orders")
    await clean_db.execute(
        "INSERT INTO orders.erp_webhooks (webhook_id, kind, received_at) VALUES "
        "('msg_old', 'credit_limit_changed', now() - interval '8 days'), "
        "('msg_recent', 'credit_limit_changed', now() - interval '6 days')"
    )
    response = await erp(orders, "credit-limits", {"customer_id": "acme", "credit_limit": "1.00", "currency": "CNY"})
    assert response.json()["applied"] is True
    remembered = {r["webhook_id"] for r in await clean_db.fetch("SELECT webhook_id FROM orders.erp_webhooks")}
    assert "msg_old" not in remembered and "msg_recent" in remembered and len(remembered) == 2


async def test_list_filters_by_status_and_customer_paginated_and_scoped(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    mine = [await enter(orders, order_body("acme")) for _ in range(3)]
    other_customer = await enter(orders, order_body("globex"))
    theirs = await enter(orders, order_body("acme"), headers=OTHER_REP)
    await decide(orders, mine[0]["id"], MANAGER)
    await decide(orders, mine[0]["id"], FINANCE)  # released

    async def ids(headers: dict, **params) -> list[str]:
        found, cursor = [], None
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            response = await orders.get("/v1/orders", params=query, headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            found += [o["id"] for o in page["items"]]
            if not (cursor := page["next_cursor"]):
                return found
            assert 'rel="next"' in response.headers["Link"]

    # A rep sees only their own orders, whatever the filters.
    assert await ids(REP, customer_id="acme") == [o["id"] for o in mine]
    assert await ids(REP, status="pending_approval") == [mine[1]["id"], mine[2]["id"], other_customer["id"]]
    assert await ids(REP, status="released", customer_id="acme") == [mine[0]["id"]]
    assert await ids(OTHER_REP, customer_id="acme") == [theirs["id"]]
    assert await ids(FINANCE, customer_id="acme", status="pending_approval") == [
        mine[1]["id"],
        mine[2]["id"],
        theirs["id"],
    ]
    assert await ids(MANAGER, customer_id="nobody") == []
    for bad in ({"status": "approved-ish"}, {"customer_id": ""}, {"customer_id": "a\x00b"}):
        response = await orders.get("/v1/orders", params=bad, headers=REP)
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await orders.get("/v1/orders", headers=auth("agent", "support_agent"))).status_code == 403


async def test_credit_position_shows_limit_outstanding_and_available(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    fresh = await orders.get("/v1/credit-limits/acme", headers=FINANCE)
    assert fresh.status_code == 200, fresh.text
    assert fresh.json() == {
        "customer_id": "acme",
        "currency": "CNY",
        "credit_limit": "500000.00",
        "limit_source": "default",
        "outstanding_balance": "0.00",
        "available": "500000.00",
        "orders_on_credit_hold": 0,
    }
    await orders.put("/v1/credit-limits/acme", json={"credit_limit": "5000.00", "currency": "CNY"}, headers=FINANCE)
    approved = await enter(orders, order_body())  # 3000.00
    await decide(orders, approved["id"], MANAGER)
    await decide(orders, approved["id"], FINANCE)
    await orders.post(f"/v1/orders/{approved['id']}/payments", json={"amount": "500.00"}, headers=FINANCE)
    held = await enter(orders, order_body(quantity="3"))  # 4500.00 > 5000 - 2500
    await decide(orders, held["id"], MANAGER)
    await enter(orders, order_body())  # not approved: not outstanding

    position = (await orders.get("/v1/credit-limits/acme", headers=MANAGER)).json()
    assert (position["credit_limit"], position["outstanding_balance"], position["available"]) == (
        "5000.00",
        "2500.00",
        "2500.00",
    )
    assert position["limit_source"] == "customer" and position["orders_on_credit_hold"] == 1
    usd = (await orders.get("/v1/credit-limits/acme", params={"currency": "usd"}, headers=FINANCE)).json()
    assert usd["currency"] == "USD" and usd["credit_limit"] == "0.00" and usd["outstanding_balance"] == "0.00"
    assert "not USD" in usd["limit_source"]
    assert (await orders.get("/v1/credit-limits/acme", headers=REP)).status_code == 403
    bad = await orders.get("/v1/credit-limits/acme", params={"currency": "XYZ"}, headers=FINANCE)
    assert bad.status_code == 422

    # A paid-up order owes nothing; an overpayment is refused, so no surplus makes room for others.
    paid, owing = await enter(orders, order_body("globex")), await enter(orders, order_body("globex"))
    for order in (paid, owing):
        await decide(orders, order["id"], MANAGER)
        await decide(orders, order["id"], FINANCE)
    over = await orders.post(f"/v1/orders/{paid['id']}/payments", json={"amount": "3500.00"}, headers=FINANCE)
    assert over.status_code == 422
    await orders.post(f"/v1/orders/{paid['id']}/payments", json={"amount": "3000.00"}, headers=FINANCE)
    globex = (await orders.get("/v1/credit-limits/globex", headers=FINANCE)).json()
    assert globex["outstanding_balance"] == "3000.00"


async def test_change_request_after_a_partial_shipment_refuses_the_shipped_part_with_a_409(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    order = await enter(orders, order_body(quantity="4"))  # 4 x 1500.00
    await decide(orders, order["id"], MANAGER)
    await decide(orders, order["id"], FINANCE)
    shipments_url = f"/v1/orders/{order['id']}/shipments"
    two = {"items": [{"line_no": 1, "quantity": "2"}]}
    shipment_id = (await orders.post(shipments_url, json=two, headers=MANAGER)).json()["shipments"][0]["id"]
    assert (await orders.post(f"{shipments_url}/{shipment_id}/ship", json={}, headers=MANAGER)).status_code == 200
    changes_url = f"/v1/orders/{order['id']}/changes"

    below = order_body(quantity="1")
    refused = await orders.post(
        changes_url, json={"lines": below["lines"], "total_amount": below["total_amount"]}, headers=REP
    )
    assert refused.status_code == 409 and refused.headers["content-type"].startswith("application/problem+json")
    assert "line 1 cannot go below the 2 already on shipments" in refused.json()["detail"]
    assert await outbox_count(clean_db, "order.changed.v1") == 0

    fewer = order_body(quantity="3")
    request = await orders.post(
        changes_url,
        json={"lines": fewer["lines"], "total_amount": fewer["total_amount"], "delivery_address": "2 Bund Rd"},
        headers=REP,
    )
    assert request.status_code == 200, request.text
    order = request.json()
    assert order["status"] == "released" and order["pending_role"] == "sales_manager"
    assert order["approvals"][-1]["change_request"] is True
    # The change request's approval is refused to non-approvers, the wrong level and the owner.
    approve_url = f"/v1/orders/{order['id']}/approve"
    for headers in (REP, OTHER_REP, auth("agent", "support_agent"), ERP, FINANCE, auth("rep-1", "sales_manager")):
        assert (await orders.post(approve_url, headers=headers)).status_code in (403, 404)
        reject = await orders.post(f"/v1/orders/{order['id']}/reject", headers=headers, json={"reason": "no"})
        assert reject.status_code in (403, 404)
    blocked = await orders.post(shipments_url, json={"items": [{"line_no": 1, "quantity": "1"}]}, headers=MANAGER)
    assert blocked.status_code == 409 and "change request" in blocked.json()["detail"]

    await decide(orders, order["id"], MANAGER)
    order = await decide(orders, order["id"], FINANCE)
    assert order["total_amount"] == "4500.00" and order["delivery_address"] == "2 Bund Rd"
    assert order["pending_change"] is None and order["status"] == "released"
    kinds = [
        json.loads(r["envelope"])["data"]["kind"]
        for r in await clean_db.fetch(
            "SELECT envelope FROM orders.outbox WHERE event_type = 'order.changed.v1' ORDER BY id"
        )
    ]
    assert kinds == ["change_requested", "change_applied"]


async def test_concurrent_finance_approvals_cannot_both_fit_one_credit_limit(
    system: System, clean_db: asyncpg.Connection
) -> None:
    orders = await system.client("orders")
    await orders.put("/v1/credit-limits/acme", json={"credit_limit": "5000.00", "currency": "CNY"}, headers=FINANCE)
    first, second = await enter(orders, order_body()), await enter(orders, order_body())  # 3000.00 each
    for order in (first, second):
        assert (await decide(orders, order["id"], MANAGER))["pending_role"] == "finance"

    await asyncio.gather(*(approve_with_handlers(uuid.UUID(o["id"]), levels=("finance",)) for o in (first, second)))
    statuses = sorted(
        [(await orders.get(f"/v1/orders/{o['id']}", headers=FINANCE)).json()["status"] for o in (first, second)]
    )
    assert statuses == ["credit_hold", "released"]
    position = (await orders.get("/v1/credit-limits/acme", headers=FINANCE)).json()
    assert position["outstanding_balance"] == "3000.00" and position["orders_on_credit_hold"] == 1
