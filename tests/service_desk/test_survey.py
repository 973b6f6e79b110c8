"""Surveys: one per delivery, answered once through the customer's page, expiring links."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.service_desk.domain import (
    InvalidAnswer,
    Survey,
    SurveyAlreadyAnswered,
    SurveyExpired,
    SurveyLink,
    SurveyStatus,
)
from tests.browser import CHROMIUM, free_port, launch, serve_api, tap
from tests.conftest import ROOT, System, auth, clear_settings_caches, wait_until
from tests.helpers import count
from tests.service_desk.events import envelope, order_delivered
from tests.test_pipeline import publish_raw

SUPPORT = auth("agent-1", "support_agent")
ARTIFACTS = ROOT / ".run" / "test" / "artifacts"
NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def new_survey(expires_at: datetime = NOW + timedelta(days=30)) -> Survey:
    link = SurveyLink(url="http://x/v1/surveys/answer/t", token_hash="h", expires_at=expires_at)
    return Survey.for_delivery(order_delivered(), survey_id=uuid.uuid4(), now=NOW, link=link)


def test_an_answer_is_checked_and_taken_once() -> None:
    survey = new_survey()
    [(sent, _)] = survey.take_events()
    assert sent.link == "http://x/v1/surveys/answer/t" and sent.expires_at == NOW + timedelta(days=30)
    for csat, nps, field in [(0, 5, "csat"), (6, 5, "csat"), (None, 5, "csat"), (5, 11, "nps"), (5, None, "nps")]:
        with pytest.raises(InvalidAnswer) as refused:
            survey.answer(csat=csat, nps=nps, comment=None, now=NOW)
        assert refused.value.field == field
    with pytest.raises(InvalidAnswer):
        survey.answer(csat=5, nps=10, comment="x" * 2001, now=NOW)
    assert survey.status == SurveyStatus.SENT and survey.take_events() == []

    survey.answer(csat=4, nps=9, comment="  fast delivery ", now=NOW)
    [(completed, _)] = survey.take_events()
    assert (completed.csat, completed.nps, completed.comment) == (4, 9, "fast delivery")
    with pytest.raises(SurveyAlreadyAnswered):
        survey.answer(csat=5, nps=10, comment=None, now=NOW)
    assert not survey.remind(NOW)  # answered: no reminder


def test_an_expired_link_is_refused_and_not_reminded() -> None:
    survey = new_survey(expires_at=NOW + timedelta(hours=1))
    assert survey.remind(NOW) and not survey.remind(NOW)  # once
    late = NOW + timedelta(hours=1)
    with pytest.raises(SurveyExpired):
        survey.answer(csat=5, nps=10, comment=None, now=late)
    assert not new_survey(expires_at=NOW).remind(NOW)


def test_a_ticket_survey_asks_only_csat() -> None:
    survey = Survey.for_ticket(
        survey_id=uuid.uuid4(),
        ticket_id=uuid.uuid4(),
        customer_id="acme",
        customer_name="Acme",
        contact=None,
        owner_id="agent-1",
        now=NOW,
    )
    survey.answer(csat=3, nps=7, comment=None, now=NOW)
    assert survey.nps is None and not survey.asks_nps


async def survey_link(db: asyncpg.Connection) -> str | None:
    row = await db.fetchrow("SELECT envelope FROM service_desk.outbox WHERE event_type = 'survey.sent.v1'")
    return json.loads(row["envelope"])["data"]["link"] if row else None


async def test_the_survey_page_over_http(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("service_desk")
    event = order_delivered()
    await publish_raw(envelope(event))
    link = await wait_until(lambda: survey_link(clean_db), what="survey.sent with its link")
    path = httpx.URL(link).path
    token = path.rsplit("/", 1)[1]
    assert path.startswith("/v1/surveys/answer/") and len(token) >= 40
    assert await count(clean_db, "SELECT count(*) FROM service_desk.surveys WHERE token_hash = $1", token) == 0
    api = await system.client("service_desk")

    page = await api.get(path)  # no token: the link is the credential
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "满意度调查" in page.text and 'name="nps"' in page.text and "Li Lei" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert "http" not in page.text.replace(link, "")  # nothing loaded from elsewhere
    english = await api.get(path, headers={"Accept-Language": "fr;q=0.9, en-GB;q=0.8, zh;q=0.1"})
    assert "Satisfaction survey" in english.text and 'lang="en"' in english.text
    assert "满意度调查" in (await api.get(path, params={"lang": "zh"}, headers={"Accept-Language": "en"})).text

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    missing_nps = await api.post(path, content="csat=5&comment=%3Cb%3Ehi%3C%2Fb%3E&lang=en", headers=form)
    assert missing_nps.status_code == 422 and "Please choose a score from 0 to 10" in missing_nps.text
    assert "&lt;b&gt;hi&lt;/b&gt;" in missing_nps.text  # the comment kept, escaped
    assert await count(clean_db, "SELECT count(*) FROM service_desk.surveys WHERE status = 'completed'") == 0

    answered = await api.post(path, content="csat=5&nps=10&comment=%E5%BE%88%E5%A5%BD&lang=zh", headers=form)
    assert answered.status_code == 200 and "感谢您的反馈" in answered.text
    again = await api.post(path, content="csat=1&nps=0&lang=en", headers=form)
    assert again.status_code == 409 and "already been answered" in again.text
    reopened = await api.get(path, params={"lang": "en"})
    assert reopened.status_code == 409 and "already been answered" in reopened.text

    [survey] = (await api.get("/v1/surveys", params={"order_id": str(event.order_id)}, headers=SUPPORT)).json()["items"]
    assert (survey["status"], survey["csat"], survey["nps"], survey["comment"]) == ("completed", 5, 10, "很好")
    assert "token_hash" not in survey
    completed = await clean_db.fetch(
        "SELECT envelope FROM service_desk.outbox WHERE event_type = 'survey.completed.v1'"
    )
    assert [json.loads(r["envelope"])["data"]["csat"] for r in completed] == [5]
    assert await count(clean_db, "SELECT count(*) FROM service_desk.timers WHERE kind = 'survey.reminder'") == 0

    unknown = await api.get("/v1/surveys/answer/" + "A" * 43)
    assert unknown.status_code == 404 and "找不到此调查" in unknown.text
    assert (await api.get("/v1/surveys/answer/%00bad")).status_code == 404
    garbage = await api.post(path, content=b"\xff\xfe", headers=form)
    assert garbage.status_code == 409  # still the used-link page, never a 500


async def test_an_expired_link_gets_a_clear_page(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("service_desk")
    await publish_raw(envelope(order_delivered()))
    path = httpx.URL(await wait_until(lambda: survey_link(clean_db), what="the link")).path
    await clean_db.execute("UPDATE service_desk.surveys SET expires_at = now() - interval '1 second'")
    api = await system.client("service_desk")
    page = await api.get(path, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert page.status_code == 410 and "This survey link has expired" in page.text
    posted = await api.post(
        path, content="csat=5&nps=10", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert posted.status_code == 410 and "已过期" in posted.text
    assert await count(clean_db, "SELECT count(*) FROM service_desk.surveys WHERE status = 'completed'") == 0


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
async def test_a_customer_answers_on_a_phone_in_chromium(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("SALESLINE_SERVICE_DESK_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    clear_settings_caches()
    await system.start_worker("service_desk")
    event = order_delivered()
    await publish_raw(envelope(event))
    link = await wait_until(lambda: survey_link(clean_db), what="survey.sent with its link")
    assert link.startswith(f"http://127.0.0.1:{port}/v1/surveys/answer/")

    with serve_api("service_desk", port):
        async with launch(phone=True, accept_language="zh-CN,zh") as browser:
            await browser.navigate(link)
            assert await browser.evaluate("document.title") == "满意度调查"
            # Fits a phone: nothing wider than the screen.
            assert await browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await tap(browser, 'input[name=csat][value="4"] + span')
            await tap(browser, 'input[name=nps][value="9"] + span')
            await tap(browser, "textarea[name=comment]")
            await browser.call("Input.insertText", text="送货很快，安装师傅很专业")
            await browser.screenshot(ARTIFACTS / "survey_page_filled.png")
            browser.events.clear()
            await tap(browser, "button[type=submit]")
            await browser.wait_for_event("Page.loadEventFired")
            assert "感谢您的反馈" in await browser.evaluate("document.body.innerText")
            await browser.screenshot(ARTIFACTS / "survey_page_answered.png")

            await browser.navigate(link)  # the customer opens the link again
            assert "此调查已完成" in await browser.evaluate("document.body.innerText")
            await browser.screenshot(ARTIFACTS / "survey_page_reused.png")

    row = await clean_db.fetchrow("SELECT status, csat, nps, comment FROM service_desk.surveys")
    assert dict(row) == {"status": "completed", "csat": 4, "nps": 9, "comment": "送货很快，安装师傅很专业"}
    assert (
        await count(clean_db, "SELECT count(*) FROM service_desk.outbox WHERE event_type = 'survey.completed.v1'") == 1
    )
    assert (ARTIFACTS / "survey_page_answered.png").stat().st_size > 5000


async def test_an_unanswered_survey_is_reminded_once_with_a_working_link(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESLINE_SERVICE_DESK_SURVEY_REMINDER_AFTER_SECONDS", "0.2")
    clear_settings_caches()
    await system.start_worker("service_desk")
    await publish_raw(envelope(order_delivered()))
    first = httpx.URL(await wait_until(lambda: survey_link(clean_db), what="the survey")).path

    async def reminded() -> list[dict]:
        rows = await clean_db.fetch("SELECT envelope FROM service_desk.outbox WHERE event_type = 'survey.reminded.v1'")
        return [json.loads(r["envelope"])["data"] for r in rows]

    [reminder] = await wait_until(reminded, what="the reminder")
    second = httpx.URL(reminder["link"]).path
    assert second != first and reminder["expires_at"] is not None
    api = await system.client("service_desk")
    assert (await api.get(first)).status_code == 200 and (await api.get(second)).status_code == 200
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (await api.post(second, content="csat=4&nps=8", headers=form)).status_code == 200
    assert (await api.post(first, content="csat=1&nps=0", headers=form)).status_code == 409  # one answer per survey
    assert len(await reminded()) == 1
