"""The repair flow, with costs that are zero for the customer under warranty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from tests.conftest import System, auth, wait_until
from tests.service_desk.events import envelope, order_delivered
from tests.test_pipeline import publish_raw

AGENT = auth("agent-1", "support_agent")


def claim(serial: str | None, type_: str = "warranty_claim") -> dict:
    return {
        "subject": "Pump noisy",
        "channel": "web",
        "type": type_,
        "customer_id": "acme",
        "customer_name": "Acme",
        "serial_number": serial,
    }


async def test_repair_flow_and_costs(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("service_desk")
    await publish_raw(envelope(order_delivered(customer_id="acme")))
    await wait_until(lambda: clean_db.fetchval("SELECT count(*) = 3 FROM service_desk.warranties"), what="warranties")
    api = await system.client("service_desk")

    ticket = (await api.post("/v1/tickets", json=claim("SN-1"), headers=AGENT)).json()
    created = await api.post(f"/v1/tickets/{ticket['id']}/repairs", headers=AGENT)
    assert created.status_code == 201, created.text
    repair = created.json()
    assert repair["status"] == "reported" and repair["under_warranty"] is True
    url = f"/v1/repairs/{repair['id']}"
    assert (await api.post(f"{url}/complete", headers=AGENT)).status_code == 409
    assert (await api.post(f"{url}/inspect", headers=AGENT)).json()["status"] == "inspecting"
    work = {
        "findings": "Bearing worn",
        "parts": [{"sku": "BRG-6204", "description": "Bearing", "quantity": 2, "unit_price": "150.00"}],
        "labour_cost": "80.00",
    }
    bad = await api.post(f"{url}/start-repair", json=work | {"labour_cost": "1.234"}, headers=AGENT)
    assert bad.status_code == 422
    started = (await api.post(f"{url}/start-repair", json=work, headers=AGENT)).json()
    assert started["status"] == "repairing" and started["parts"][0]["amount"] == "300.00"
    assert (started["total_cost"], started["charged_amount"]) == ("380.00", "0.00")
    await api.post(f"{url}/complete", headers=AGENT)
    rejected = (await api.post(f"{url}/reject", json={"reason": "Still noisy"}, headers=AGENT)).json()
    assert rejected["status"] == "repairing" and rejected["rejections"] == ["Still noisy"]
    await api.post(f"{url}/complete", headers=AGENT)
    accepted = (await api.post(f"{url}/accept", headers=AGENT)).json()
    assert accepted["status"] == "accepted" and accepted["accepted_at"]

    # Not under warranty: the customer pays.
    other = (await api.post("/v1/tickets", json=claim("SN-404", "repair"), headers=AGENT)).json()
    paid = (await api.post(f"/v1/tickets/{other['id']}/repairs", headers=AGENT)).json()
    await api.post(f"/v1/repairs/{paid['id']}/inspect", headers=AGENT)
    charged = (await api.post(f"/v1/repairs/{paid['id']}/start-repair", json=work, headers=AGENT)).json()
    assert charged["under_warranty"] is False and charged["charged_amount"] == "380.00"

    inquiry = (await api.post("/v1/tickets", json=claim("SN-1", "inquiry"), headers=AGENT)).json()
    assert (await api.post(f"/v1/tickets/{inquiry['id']}/repairs", headers=AGENT)).status_code == 422
    listed = await api.get("/v1/repairs", params={"ticket_id": ticket["id"]}, headers=AGENT)
    assert [r["id"] for r in listed.json()["items"]] == [repair["id"]]
    assert (await api.get(url, headers=auth("rep-1", "sales_rep"))).status_code == 403

    # An unserialised unit by its order line: free while the line's warranty runs; a whole
    # order is not a unit, so a ticket naming only the order is charged.
    recent = order_delivered(customer_id="acme", delivered_at=datetime.now(UTC) - timedelta(days=1))
    await publish_raw(envelope(recent))
    await wait_until(lambda: clean_db.fetchval("SELECT count(*) = 6 FROM service_desk.warranties"), what="more")
    by_line = claim(None) | {"order_id": str(recent.order_id), "order_line_no": 3}
    line_ticket = (await api.post("/v1/tickets", json=by_line, headers=AGENT)).json()
    assert line_ticket["warranty_coverage"]["covered"] is True
    line_repair = (await api.post(f"/v1/tickets/{line_ticket['id']}/repairs", headers=AGENT)).json()
    assert line_repair["under_warranty"] is True
    whole_order = await api.post("/v1/tickets", json=claim(None) | {"order_id": str(recent.order_id)}, headers=AGENT)
    order_repair = (await api.post(f"/v1/tickets/{whole_order.json()['id']}/repairs", headers=AGENT)).json()
    assert order_repair["under_warranty"] is False
