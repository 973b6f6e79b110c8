"""The behaviour score: points per interaction, halving every half-life, capped at 100."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from services.leads.domain.behaviour import DEFAULT_POINTS, BehaviourModel, InteractionType
from tests.conftest import System, auth
from tests.leads.org import put_rep

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MODEL = BehaviourModel(points=DEFAULT_POINTS, half_life=timedelta(days=14))
R1, R2 = auth("r1", "sales_rep"), auth("r2", "sales_rep")
AUTOMATION = auth("marketing-automation", "integration")


def test_points_halve_every_half_life_in_any_arrival_order() -> None:
    total, as_of = MODEL.add(0.0, None, InteractionType.MEETING_HELD, T0)  # 30
    assert MODEL.score(total, as_of, T0) == 30
    assert MODEL.score(total, as_of, T0 + timedelta(days=14)) == 15
    assert MODEL.score(total, as_of, T0 + timedelta(days=28)) == 8  # 7.5 rounds to even: 8
    # A form submitted a week later, then a late report of a site visit before both.
    later, as_of2 = MODEL.add(total, as_of, InteractionType.FORM_SUBMITTED, T0 + timedelta(days=7))
    late, as_of3 = MODEL.add(later, as_of2, InteractionType.SITE_VISIT, T0 - timedelta(days=14))
    expected = 30 * 0.5**0.5 + 20 + 4 * 0.5**1.5  # each decayed to day 7
    assert as_of3 == T0 + timedelta(days=7) and abs(late - expected) < 1e-9
    many = 0.0, None
    for _ in range(10):
        many = MODEL.add(*many, InteractionType.MEETING_HELD, T0)
    assert MODEL.score(*many, T0) == 100  # capped
    assert MODEL.score(0.0, None, T0) == 0


async def test_interactions_raise_the_score(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east")
    created = await leads.post(
        "/v1/leads",
        json={"source": "web_form", "company_name": "Acme", "region": "east"},
        headers=auth("f", "integration"),
    )
    url = f"/v1/leads/{created.json()['id']}/interactions"
    now = datetime.now(UTC)
    first = await leads.post(url, json={"type": "form_submitted", "occurred_at": now.isoformat()}, headers=AUTOMATION)
    assert first.status_code == 201 and first.json()["behaviour_score"] == 20, first.text
    old = (now - timedelta(days=14)).isoformat()  # half its points
    second = await leads.post(url, json={"type": "meeting_held", "occurred_at": old}, headers=R1)
    assert second.json()["behaviour_score"] == 35
    # Concurrent reports all count.
    visits = [{"type": "site_visit", "occurred_at": now.isoformat()}] * 5
    await asyncio.gather(*(leads.post(url, json=v, headers=AUTOMATION) for v in visits))
    shown = await leads.get(url, params={"limit": 3}, headers=R1)
    assert shown.json()["behaviour_score"] == 55 and len(shown.json()["interactions"]) == 3
    assert shown.json()["next_cursor"] and shown.headers["Link"]
    for bad in ({"type": "tweet", "occurred_at": now.isoformat()}, {"type": "site_visit"}):
        assert (await leads.post(url, json=bad, headers=R1)).status_code == 422
    future = {"type": "site_visit", "occurred_at": (now + timedelta(days=1)).isoformat()}
    assert (await leads.post(url, json=future, headers=R1)).status_code == 422
    assert (await leads.post(url, json=visits[0], headers=R2)).status_code == 404  # not r2's lead
    assert (await leads.get(url, headers=R2)).status_code == 404
    assert await clean_db.fetchval("SELECT count(*) FROM leads.lead_interactions") == 7
