"""Reports: rates, SLA compliance, backlog by age, CSAT and NPS."""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg
import httpx

from services.service_desk.domain.metrics import csat_average, nps, rate
from tests.conftest import System, auth, wait_until
from tests.service_desk.events import envelope, order_delivered
from tests.test_pipeline import publish_raw

LEAD = auth("lead-1", "support_lead")
AGENT = auth("agent-1", "support_agent")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_satisfaction_arithmetic() -> None:
    assert nps({10: 3, 9: 1, 8: 2, 6: 1, 0: 1}) == Decimal("25.0")  # (4 - 2) / 8
    assert nps({}) is None and nps({7: 2, 8: 1}) == Decimal("0.0")
    assert csat_average({5: 2, 4: 1}) == Decimal("4.67")
    assert rate(1, 3) == Decimal("0.3333") and rate(0, 0) is None


async def test_summary(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("service_desk")
    api = await system.client("service_desk")
    for _ in range(2):
        await publish_raw(envelope(order_delivered()))
    await wait_until(lambda: clean_db.fetchval("SELECT count(*) = 2 FROM service_desk.surveys"), what="two surveys")
    rows = await clean_db.fetch("SELECT envelope FROM service_desk.outbox WHERE event_type = 'survey.sent.v1'")
    path = httpx.URL(json.loads(rows[0]["envelope"])["data"]["link"]).path
    assert (await api.post(path, content="csat=5&nps=10", headers=FORM)).status_code == 200

    await api.put(
        "/v1/agents/agent-1", json={"name": "A", "groups": ["repair", "complaints"], "capacity": 9}, headers=LEAD
    )
    body = {"subject": "Leak", "channel": "email", "type": "repair", "customer_id": "acme", "customer_name": "Acme"}
    first = (await api.post("/v1/tickets", json=body, headers=AGENT)).json()
    await api.post("/v1/tickets", json=body, headers=AGENT)  # a repeat issue
    await api.post("/v1/tickets", json=body | {"type": "complaint", "customer_id": "b"}, headers=AGENT)
    await api.post(f"/v1/tickets/{first['id']}/start", headers=AGENT)
    resolved = (await api.post("/v1/tickets", json=body | {"customer_id": "c"}, headers=AGENT)).json()
    await api.post(f"/v1/tickets/{resolved['id']}/start", headers=AGENT)
    await api.post(f"/v1/tickets/{resolved['id']}/resolve", json={"resolution": "Fixed"}, headers=AGENT)

    assert (await api.get("/v1/service-desk-reports/summary", headers=AGENT)).status_code == 403
    report = await api.get("/v1/service-desk-reports/summary", headers=LEAD)
    assert report.status_code == 200, report.text
    data = report.json()
    assert data["tickets"] == {
        "opened": 4,
        "complaints": 1,
        "complaint_rate": "0.2500",
        "repeat_issues": 1,
        "repeat_issue_rate": "0.2500",
    }
    response_sla = [r for r in data["sla"] if r["kind"] == "first_response" and r["group"] == "repair"]
    assert response_sla == [
        {
            "priority": "P3",
            "group": "repair",
            "kind": "first_response",
            "decided": 2,
            "met": 2,
            "breached": 0,
            "compliance": "1.0000",
            "avg_business_seconds": response_sla[0]["avg_business_seconds"],
        }
    ]
    assert data["backlog_by_age"] == {"under_1_day": 3, "1_to_3_days": 0, "3_to_7_days": 0, "over_7_days": 0}
    assert data["times_seconds"]["first_response_p50"] is not None
    delivery, ticket_surveys = data["surveys"]
    assert (ticket_surveys["trigger"], ticket_surveys["sent"], ticket_surveys["answered"]) == ("ticket.resolved", 1, 0)
    assert data["surveys_by_team"] == [
        {"key": "repair", "sent": 1, "answered": 0, "response_rate": "0.0000", "csat_average": None, "nps": None}
    ]
    by_product = {row["key"]: row for row in data["surveys_by_product"]}
    assert by_product["PUMP-1"] == {
        "key": "PUMP-1",
        "sent": 2,
        "answered": 1,
        "response_rate": "0.5000",
        "csat_average": "5.00",
        "nps": "100.0",
    }
    assert (delivery["trigger"], delivery["sent"], delivery["answered"]) == ("order.delivered", 2, 1)
    assert delivery["response_rate"] == "0.5000" and delivery["csat_average"] == "5.00" and delivery["nps"] == "100.0"
    assert delivery["csat_distribution"]["5"] == 1 and delivery["nps_distribution"]["10"] == 1

    team = (await api.get("/v1/service-desk-reports/summary", params={"group": "complaints"}, headers=LEAD)).json()
    assert team["tickets"]["opened"] == 1 and team["backlog_by_age"]["under_1_day"] == 1
    for bad in ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, {"from": "2026-01-01T00:00"}):
        refused = await api.get("/v1/service-desk-reports/summary", params=bad, headers=LEAD)
        assert refused.status_code == 422, refused.text
