"""Customer tiers: contract.signed tells the service desk what a customer has under contract,
and a key customer's tickets get the key tier's SLA policy instead of the priority's."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.conftest import System, auth, wait_until
from tests.helpers import count
from tests.service_desk.events import contract_signed, envelope
from tests.test_contract_terminated import terminated
from tests.test_pipeline import publish_raw

AGENT = auth("agent-1", "support_agent")
H = 3600


def _ticket(customer_id: str, priority: str = "P1") -> dict:
    return {
        "subject": "Pump stopped",
        "channel": "phone",
        "type": "repair",
        "priority": priority,
        "customer_id": customer_id,
        "customer_name": customer_id,
    }


async def test_a_contract_signed_twice_counts_once_toward_the_customer_tier(
    system: System, clean_db: asyncpg.Connection
) -> None:
    await system.start_worker("service_desk")
    big = contract_signed(customer_id="acme", total="600000.00")
    await publish_raw(envelope(big), times=2)  # the same envelope redelivered
    await publish_raw(envelope(big))  # the same contract under a new event id
    await wait_until(
        lambda: clean_db.fetchval(
            "SELECT count(*) = 2 FROM service_desk.inbox WHERE consumer = 'service_desk.contract_signed'"
        ),
        what="both deliveries handled",
    )
    await asyncio.sleep(0.3)
    assert await count(clean_db, "SELECT count(*) FROM service_desk.customer_contracts") == 1
    api = await system.client("service_desk")
    # 600,000 CNY once is below the key tier's 1,000,000: counted twice it would not be.
    normal = (await api.post("/v1/tickets", json=_ticket("acme"), headers=AGENT)).json()
    assert normal["sla_tier"] is None
    assert [c["target_seconds"] for c in normal["sla"]] == [1 * H, 8 * H]

    second = contract_signed(customer_id="acme", total="400000.00")
    await publish_raw(envelope(second))
    usd = contract_signed(customer_id="globex", total="5000000.00", currency="USD")
    await publish_raw(envelope(usd))
    await wait_until(
        lambda: clean_db.fetchval("SELECT count(*) = 3 FROM service_desk.customer_contracts"), what="two more contracts"
    )
    key = await api.post("/v1/tickets", json=_ticket("acme"), headers=AGENT)
    assert key.status_code == 201, key.text
    assert key.json()["sla_tier"] == "key"
    assert [(c["kind"], c["target_seconds"]) for c in key.json()["sla"]] == [
        ("first_response", 0.5 * H),
        ("resolution", 4 * H),
    ]
    # Another currency is not converted: no tier from it.
    assert (await api.post("/v1/tickets", json=_ticket("globex"), headers=AGENT)).json()["sla_tier"] is None
    # P3 for a key customer: the key tier's P3 targets (8 h / 48 h, not 24 h / 72 h).
    p3 = (await api.post("/v1/tickets", json=_ticket("acme", "P3"), headers=AGENT)).json()
    assert [c["target_seconds"] for c in p3["sla"]] == [8 * H, 48 * H]


async def test_a_terminated_contract_stops_counting_toward_the_tier_in_either_order(
    system: System, clean_db: asyncpg.Connection
) -> None:
    await system.start_worker("service_desk")
    api = await system.client("service_desk")

    async def handled(consumer: str, n: int) -> None:
        query = f"SELECT count(*) = {n} FROM service_desk.inbox WHERE consumer = 'service_desk.{consumer}'"
        await wait_until(lambda: clean_db.fetchval(query), what=f"{n} {consumer} handled")

    async def tier() -> str | None:
        ticket = await api.post("/v1/tickets", json=_ticket("acme"), headers=AGENT)
        assert ticket.status_code == 201, ticket.text
        return ticket.json()["sla_tier"]

    big = contract_signed(customer_id="acme", total="1200000.00")
    await publish_raw(envelope(big))
    await handled("contract_signed", 1)
    assert await tier() == "key"
    await publish_raw(envelope(terminated(big, "customer insolvent")), times=2)
    await handled("contract_terminated", 1)
    await asyncio.sleep(0.3)  # the second delivery had its chance
    assert await count(clean_db, "SELECT count(*) FROM service_desk.terminated_contracts") == 1
    assert await tier() is None

    # A termination delivered before its signing: the contract never counts.
    late = contract_signed(customer_id="acme", total="1500000.00")
    await publish_raw(envelope(terminated(late, "withdrawn")), times=2)
    await handled("contract_terminated", 2)
    await publish_raw(envelope(late), times=2)
    await handled("contract_signed", 2)
    await asyncio.sleep(0.3)
    assert await count(clean_db, "SELECT count(*) FROM service_desk.customer_contracts") == 2
    assert await tier() is None
