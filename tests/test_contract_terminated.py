"""Who reacts to ``contract.terminated``, each event delivered twice against real PostgreSQL and
RabbitMQ: orders cancels the contract's order unless goods have shipped (one ``order.cancelled``),
and the customer's timeline in leads shows the termination once."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

from shared.events import ContractSigned, ContractTerminated, make_envelope
from tests.conftest import System, auth, wait_until
from tests.leads.test_targets import signed
from tests.orders.helpers import MANAGER, approve_through_api
from tests.orders.test_orders_api import REP
from tests.test_pipeline import publish_raw

ADMIN = auth("admin-1", "admin")


def terminated(contract: ContractSigned, reason: str) -> ContractTerminated:
    return ContractTerminated(
        contract_id=contract.contract_id,
        contract_number=contract.contract_number,
        customer_id=contract.customer_id,
        owner_id=contract.owner_id,
        previous_status="signed",
        reason=reason,
        terminated_by="legal-1",
        terminated_at=datetime.now(UTC),
    )


async def publish(event: ContractSigned | ContractTerminated, *, times: int = 1) -> uuid.UUID:
    envelope = make_envelope(event, source="/salesline/contracts", subject=str(event.contract_id))
    await publish_raw(envelope, times=times)
    return envelope.id


async def order_of(orders: httpx.AsyncClient, contract: ContractSigned) -> dict:
    params = {"contract_id": str(contract.contract_id)}
    [order] = (await orders.get("/v1/orders", params=params, headers=REP)).json()["items"]
    return order


async def test_a_terminated_contract_cancels_its_unshipped_order_and_shows_on_the_timeline(
    system: System, clean_db: asyncpg.Connection
) -> None:
    await system.start_worker("orders")
    await system.start_worker("leads")
    orders = await system.client("orders")
    unshipped = signed("rep-1", "3000.00", datetime.now(UTC))
    shipped = unshipped.model_copy(update={"contract_id": uuid.uuid4(), "contract_number": "HT-2026-000043"})
    for contract in (unshipped, shipped):
        await publish(contract)
    await wait_until(lambda: clean_db.fetchval("SELECT count(*) = 2 FROM orders.orders"), what="both orders")
    # The second contract's order is approved and its goods are on the way.
    goods = await order_of(orders, shipped)
    await approve_through_api(orders, goods["id"])
    shipments_url = f"/v1/orders/{goods['id']}/shipments"
    released = await orders.post(shipments_url, json={"items": [{"line_no": 1, "quantity": "1"}]}, headers=MANAGER)
    shipment_id = released.json()["shipments"][0]["id"]
    assert (await orders.post(f"{shipments_url}/{shipment_id}/ship", json={}, headers=MANAGER)).status_code == 200

    ids = [await publish(terminated(c, "customer insolvent"), times=2) for c in (unshipped, shipped)]
    for service in ("orders", "leads"):
        await wait_until(
            lambda service=service: clean_db.fetchval(
                f"SELECT count(*) = 2 FROM {service}.inbox WHERE event_id = ANY($1::uuid[])", ids
            ),
            what=f"{service} consumed both terminations",
        )
    await asyncio.sleep(0.5)  # the second deliveries had their chance

    cancelled = await order_of(orders, unshipped)
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_reason"] == "contract HT-2026-000042 terminated: customer insolvent"
    assert (await order_of(orders, shipped))["status"] == "released"  # shipped goods: it stays
    [row] = await clean_db.fetch("SELECT envelope FROM orders.outbox WHERE event_type = 'order.cancelled.v1'")
    data = json.loads(row["envelope"])["data"]
    assert (data["order_id"], data["cancelled_by"]) == (cancelled["id"], "system")

    assert await clean_db.fetchval("SELECT count(*) FROM leads.customer_events WHERE type = 'contract.terminated'") == 2
    leads = await system.client("leads")
    [account] = (await leads.get("/v1/accounts", headers=ADMIN)).json()["items"]
    timeline = (await leads.get(f"/v1/accounts/{account['id']}/timeline", headers=ADMIN)).json()["items"]
    ended = [e for e in timeline if e["type"] == "contract.terminated"]
    assert sorted(e["reference"] for e in ended) == ["HT-2026-000042", "HT-2026-000043"]
    assert ended[0]["title"].endswith("terminated: customer insolvent")
    assert ended[0]["details"]["terminated_by"] == "legal-1"


async def test_a_signing_delivered_after_its_termination_enters_no_order(
    system: System, clean_db: asyncpg.Connection
) -> None:
    await system.start_worker("orders")
    contract = signed("rep-1", "3000.00", datetime.now(UTC))
    termination = await publish(terminated(contract, "withdrawn"), times=2)
    await wait_until(
        lambda: clean_db.fetchval("SELECT count(*) FROM orders.inbox WHERE event_id = $1", termination),
        what="the termination consumed",
    )
    signing = await publish(contract, times=2)
    await wait_until(
        lambda: clean_db.fetchval("SELECT count(*) FROM orders.inbox WHERE event_id = $1", signing),
        what="the late signing consumed",
    )
    await asyncio.sleep(0.5)  # the second deliveries had their chance
    assert await clean_db.fetchval("SELECT count(*) FROM orders.orders") == 0
    assert await clean_db.fetchval("SELECT count(*) FROM orders.terminated_contracts") == 1
    assert await clean_db.fetchval("SELECT count(*) FROM orders.outbox") == 0
