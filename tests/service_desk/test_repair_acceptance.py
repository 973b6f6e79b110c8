"""Repair acceptance through the customer's link: accept, or reject (why) back to repairing,
on a server-rendered page driven in a real headless Chromium; one answer per link, expiring."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest

from services.service_desk.domain.repair import AcceptanceLinkExpired, AcceptanceLinkUsed, Repair
from services.service_desk.domain.survey import SurveyLink
from shared.domain import DomainError
from tests.browser import CHROMIUM, free_port, launch, serve_api, tap
from tests.conftest import ROOT, System, auth, clear_settings_caches
from tests.helpers import count

AGENT = auth("agent-1", "support_agent")
LEAD = auth("lead-1", "support_lead")
ARTIFACTS = ROOT / ".run" / "test" / "artifacts"
NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _repair() -> Repair:
    repair = Repair(
        id=uuid.uuid4(),
        ticket_id=uuid.uuid4(),
        ticket_number="TK-2026-000001",
        customer_id="acme",
        serial_number="SN-1",
        under_warranty=True,
        currency="CNY",
        created_at=NOW,
        updated_at=NOW,
    )
    repair.inspect(NOW)
    repair.start_repair(findings="seal worn", parts=(), labour_cost=Decimal(0), now=NOW)
    return repair


def test_the_customer_answers_once_before_the_link_expires() -> None:
    repair = _repair()
    link = SurveyLink(url="http://x/v1/repairs/accept/t", token_hash="h", expires_at=NOW + timedelta(days=1))
    repair.complete(NOW, link=link)
    [(completed, _)] = repair.take_events()
    assert completed.link == link.url and completed.charged_amount == 0 and repair.acceptance_token_hash == "h"
    with pytest.raises(DomainError):
        repair.customer_answer(accepted=False, reason="  ", now=NOW)  # a rejection says why
    repair.customer_answer(accepted=False, reason="still leaks", now=NOW)
    assert repair.status == "repairing" and repair.rejections == ["still leaks"]
    with pytest.raises(AcceptanceLinkUsed):
        repair.customer_answer(accepted=True, reason=None, now=NOW)

    repair.complete(NOW, link=link)
    with pytest.raises(AcceptanceLinkExpired):
        repair.customer_answer(accepted=True, reason=None, now=NOW + timedelta(days=1))
    repair.customer_answer(accepted=True, reason=None, now=NOW)
    assert repair.status == "accepted" and repair.accepted_by == "customer"


async def _repair_links(db: asyncpg.Connection) -> list[dict]:
    rows = await db.fetch(
        "SELECT envelope FROM service_desk.outbox WHERE event_type = 'ticket.repair_completed.v1' ORDER BY id"
    )
    return [json.loads(r["envelope"])["data"] for r in rows]


async def _completed_repair(api: httpx.AsyncClient) -> str:
    """A repair ticket, inspected, repaired with a part, and completed: awaiting the customer."""
    ticket_body = {
        "subject": "水泵漏水",
        "channel": "phone",
        "type": "repair",
        "customer_id": "acme",
        "customer_name": "Acme",
        "contact": {"name": "韩梅梅", "phone": "+8613800138000"},
    }
    ticket = (await api.post("/v1/tickets", json=ticket_body, headers=AGENT)).json()
    repair = (await api.post(f"/v1/tickets/{ticket['id']}/repairs", headers=AGENT)).json()
    url = f"/v1/repairs/{repair['id']}"
    assert (await api.post(f"{url}/inspect", headers=AGENT)).status_code == 200
    start = {
        "findings": "机械密封磨损",
        "parts": [{"sku": "SEAL-1", "description": "机械密封", "quantity": 1, "unit_price": "80.00"}],
        "labour_cost": "120.00",
    }
    assert (await api.post(f"{url}/start-repair", json=start, headers=AGENT)).status_code == 200
    completed = await api.post(f"{url}/complete", headers=AGENT)
    assert completed.status_code == 200, completed.text
    return repair["id"]


async def test_the_acceptance_page_over_http(system: System, clean_db: asyncpg.Connection) -> None:
    api = await system.client("service_desk")
    repair_id = await _completed_repair(api)
    [event] = await _repair_links(clean_db)
    assert event["repair_id"] == repair_id and event["contact"]["name"] == "韩梅梅"
    assert (event["charged_amount"], event["currency"]) == ("200.00", "CNY")  # no warranty registered
    path = httpx.URL(event["link"]).path
    token = path.rsplit("/", 1)[1]
    assert path.startswith("/v1/repairs/accept/") and len(token) >= 40
    stored = "SELECT count(*) FROM service_desk.repairs WHERE acceptance_token_hash = $1"
    assert await count(clean_db, stored, token) == 0
    assert "acceptance_token_hash" not in (await api.get(f"/v1/repairs/{repair_id}", headers=AGENT)).json()

    page = await api.get(path)
    assert page.status_code == 200 and "请确认维修结果" in page.text and "机械密封磨损" in page.text
    assert "CNY 200.00" in page.text and "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    english = await api.get(path, headers={"Accept-Language": "en"})
    assert "Please check the repair" in english.text

    no_reason = await api.post(path, content="answer=reject&reason=+&lang=en", headers=FORM)
    assert no_reason.status_code == 422 and "Please say why" in no_reason.text
    no_choice = await api.post(path, content="lang=en", headers=FORM)
    assert no_choice.status_code == 422
    assert (await api.get(f"/v1/repairs/{repair_id}", headers=AGENT)).json()["status"] == "awaiting_acceptance"

    rejected = await api.post(path, content="answer=reject&reason=%E8%BF%98%E5%9C%A8%E6%BC%8F", headers=FORM)
    assert rejected.status_code == 200 and "我们会继续维修" in rejected.text
    repair = (await api.get(f"/v1/repairs/{repair_id}", headers=AGENT)).json()
    assert repair["status"] == "repairing" and repair["rejections"] == ["还在漏"]
    reused = await api.post(path, content="answer=accept", headers=FORM)
    assert reused.status_code == 409 and "此链接已使用" in reused.text
    assert (await api.get(path, params={"lang": "en"})).status_code == 409

    # Completed again: a new link; the first one no longer opens anything.
    await api.post(f"/v1/repairs/{repair_id}/complete", headers=AGENT)
    first, second = await _repair_links(clean_db)
    assert second["link"] != first["link"]
    assert (await api.get(path)).status_code == 404
    await clean_db.execute("UPDATE service_desk.repairs SET acceptance_expires_at = now() - interval '1 second'")
    expired = await api.post(httpx.URL(second["link"]).path, content="answer=accept", headers=FORM)
    assert expired.status_code == 410 and "已过期" in expired.text
    assert (await api.get(f"/v1/repairs/{repair_id}", headers=AGENT)).json()["status"] == "awaiting_acceptance"
    unknown = await api.get("/v1/repairs/accept/" + "A" * 43)
    assert unknown.status_code == 404 and "找不到此维修" in unknown.text
    assert (await api.post("/v1/repairs/accept/%00", content=b"\xff", headers=FORM)).status_code == 404


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
async def test_a_customer_rejects_then_accepts_a_repair_in_chromium(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("SALESLINE_SERVICE_DESK_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    clear_settings_caches()
    api = await system.client("service_desk")
    repair_id = await _completed_repair(api)
    [first] = await _repair_links(clean_db)
    assert first["link"].startswith(f"http://127.0.0.1:{port}/v1/repairs/accept/")

    with serve_api("service_desk", port):
        async with launch(phone=True, accept_language="zh-CN,zh") as browser:
            await browser.navigate(first["link"])
            assert await browser.evaluate("document.title") == "请确认维修结果"
            assert await browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await tap(browser, "textarea[name=reason]")
            await browser.call("Input.insertText", text="水泵还是有点漏水")
            browser.events.clear()
            await tap(browser, "button[value=reject]")
            await browser.wait_for_event("Page.loadEventFired")
            assert "我们会继续维修" in await browser.evaluate("document.body.innerText")

            await api.post(f"/v1/repairs/{repair_id}/complete", headers=AGENT)
            [_, second] = await _repair_links(clean_db)
            await browser.navigate(second["link"])
            assert "机械密封磨损" in await browser.evaluate("document.body.innerText")
            await browser.screenshot(ARTIFACTS / "repair_acceptance_page.png")
            browser.events.clear()
            await tap(browser, "button[value=accept]")
            await browser.wait_for_event("Page.loadEventFired")
            assert "感谢您的验收" in await browser.evaluate("document.body.innerText")
            await browser.screenshot(ARTIFACTS / "repair_acceptance_accepted.png")

            await browser.navigate(second["link"])  # opened again
            assert "此链接已使用" in await browser.evaluate("document.body.innerText")
            await browser.navigate(first["link"])
            assert "找不到此维修" in await browser.evaluate("document.body.innerText")

    row = await clean_db.fetchrow("SELECT status, accepted_by, rejections FROM service_desk.repairs")
    assert (row["status"], row["accepted_by"], json.loads(row["rejections"])) == (
        "accepted",
        "customer",
        ["水泵还是有点漏水"],
    )
    assert (ARTIFACTS / "repair_acceptance_page.png").stat().st_size > 5000
