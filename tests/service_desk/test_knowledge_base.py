"""Knowledge base: drafts and published versions, search in Chinese and English, suggestions."""

from __future__ import annotations

import asyncpg

from services.service_desk.domain.article import query_terms, search_terms
from tests.conftest import System, auth

AGENT = auth("agent-1", "support_agent")
LEAD = auth("lead-1", "support_lead")


def test_terms_for_chinese_and_english() -> None:
    assert search_terms("水泵漏水 Pump-200") == ["水", "泵", "漏", "水", "水泵", "泵漏", "漏水", "pump", "200"]
    assert query_terms("漏水") == ["漏水"] and query_terms("泵") == ["泵"]
    assert query_terms("密封圈 seal") == ["密封", "封圈", "seal"]
    assert query_terms("& | ! ' :*") == []


async def test_publish_search_suggest_and_link(system: System, clean_db: asyncpg.Connection) -> None:
    api = await system.client("service_desk")
    bodies = [
        {"category": "repair", "title": "水泵漏水怎么办", "body": "检查密封圈是否老化，必要时更换密封圈。"},
        {"category": "repair", "title": "Pump leaks at the seal", "body": "Replace the mechanical seal; torque 12 Nm."},
        {"category": "billing", "title": "发票抬头修改", "body": "请在订单页面申请修改发票抬头。"},
    ]
    ids = []
    for body in bodies:
        created = await api.post("/v1/kb-articles", json=body, headers=AGENT)
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "draft" and created.json()["published"] is None
        ids.append(created.json()["id"])

    async def search(q: str, **params) -> list[str]:
        response = await api.get("/v1/kb-articles/search", params={"q": q, **params}, headers=AGENT)
        assert response.status_code == 200, response.text
        return [hit["title"] for hit in response.json()]

    assert await search("漏水") == []  # drafts are not searchable
    assert (await api.post(f"/v1/kb-articles/{ids[0]}/publish", headers=AGENT)).status_code == 403
    for article_id in ids:
        published = await api.post(f"/v1/kb-articles/{article_id}/publish", headers=LEAD)
        assert published.status_code == 200 and published.json()["published"]["number"] == 1

    assert await search("漏水") == ["水泵漏水怎么办"]
    assert await search("密封圈") == ["水泵漏水怎么办"]
    assert await search("发票") == ["发票抬头修改"]
    assert await search("泵") == ["水泵漏水怎么办"]
    assert await search("PUMP seal") == ["Pump leaks at the seal"]
    assert await search("保修卡") == [] and await search("pump invoice") == []
    assert await search("漏水", category="billing") == []
    assert await search("a & b | !c ' \\") == []  # operators are just text
    assert (await api.get("/v1/kb-articles/search", params={"q": ""}, headers=AGENT)).status_code == 422

    # Edit the draft: readers and search keep the published version until it is published again.
    url = f"/v1/kb-articles/{ids[0]}"
    read = await api.get(url, headers=AGENT)
    edit = {"category": "repair", "title": "水泵漏水处理", "body": "更换机械密封。"}
    edited = await api.put(f"{url}/draft", json=edit, headers={**AGENT, "If-Match": read.headers["ETag"]})
    assert edited.status_code == 200 and edited.json()["published"]["title"] == "水泵漏水怎么办"
    stale = await api.put(f"{url}/draft", json=edit, headers={**AGENT, "If-Match": read.headers["ETag"]})
    assert stale.status_code == 412
    assert await search("机械") == []
    await api.post(f"{url}/publish", headers=LEAD)
    assert await search("机械") == ["水泵漏水处理"] and await search("老化") == []
    detail = (await api.get(url, headers=AGENT)).json()
    assert [v["number"] for v in detail["versions"]] == [1, 2] and detail["versions"][0]["title"] == "水泵漏水怎么办"
    listed = await api.get("/v1/kb-articles", params={"category": "repair", "limit": 1}, headers=AGENT)
    assert len(listed.json()["items"]) == 1 and listed.json()["next_cursor"]

    # A ticket gets suggestions from its subject, and the agent links one when resolving.
    await api.put("/v1/agents/agent-1", json={"name": "A", "groups": ["repair"], "capacity": 5}, headers=LEAD)
    ticket_body = {
        "subject": "客户反映水泵漏水",
        "channel": "phone",
        "type": "repair",
        "customer_id": "acme",
        "customer_name": "Acme",
    }
    ticket = (await api.post("/v1/tickets", json=ticket_body, headers=AGENT)).json()
    suggested = await api.get(f"/v1/tickets/{ticket['id']}/suggested-articles", headers=AGENT)
    assert [hit["id"] for hit in suggested.json()] == [ids[0]]
    await api.post(f"/v1/tickets/{ticket['id']}/start", headers=AGENT)
    draft_only = (await api.post("/v1/kb-articles", json=bodies[1], headers=AGENT)).json()["id"]
    refused = await api.post(
        f"/v1/tickets/{ticket['id']}/resolve", json={"resolution": "换密封", "article_ids": [draft_only]}, headers=AGENT
    )
    assert (
        refused.status_code == 422
        and (await api.get(f"/v1/tickets/{ticket['id']}", headers=AGENT)).json()["status"] == "in_progress"
    )
    resolved = await api.post(
        f"/v1/tickets/{ticket['id']}/resolve", json={"resolution": "换密封", "article_ids": [ids[0]]}, headers=AGENT
    )
    assert resolved.status_code == 200 and resolved.json()["linked_article_ids"] == [ids[0]]


async def test_an_archived_article_leaves_search_and_cannot_be_linked(
    system: System, clean_db: asyncpg.Connection
) -> None:
    api = await system.client("service_desk")
    body = {"category": "billing", "title": "发票抬头修改", "body": "请在订单页面申请修改发票抬头。"}
    article = (await api.post("/v1/kb-articles", json=body, headers=AGENT)).json()
    url = f"/v1/kb-articles/{article['id']}"
    await api.post(f"{url}/publish", headers=LEAD)
    hits = await api.get("/v1/kb-articles/search", params={"q": "发票"}, headers=AGENT)
    assert [hit["id"] for hit in hits.json()] == [article["id"]]

    assert (await api.post(f"{url}/archive", headers=AGENT)).status_code == 403  # leads archive
    stale = await api.post(f"{url}/archive", headers={**LEAD, "If-Match": '"1"'})
    assert stale.status_code == 412
    archived = await api.post(f"{url}/archive", headers=LEAD)
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    assert (await api.get("/v1/kb-articles/search", params={"q": "发票"}, headers=AGENT)).json() == []
    again = await api.post(f"{url}/archive", headers=LEAD)
    assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
    assert (await api.post(f"{url}/publish", headers=LEAD)).status_code == 409
    detail = (await api.get(url, headers=AGENT)).json()
    assert detail["status"] == "archived" and [v["number"] for v in detail["versions"]] == [1]
    listed = await api.get("/v1/kb-articles", params={"status": "archived"}, headers=AGENT)
    assert [a["id"] for a in listed.json()["items"]] == [article["id"]]

    await api.put("/v1/agents/agent-1", json={"name": "A", "groups": ["general"], "capacity": 5}, headers=LEAD)
    ticket_body = {"subject": "发票", "channel": "web", "type": "inquiry", "customer_id": "acme", "customer_name": "A"}
    ticket = (await api.post("/v1/tickets", json=ticket_body, headers=AGENT)).json()
    assert (await api.get(f"/v1/tickets/{ticket['id']}/suggested-articles", headers=AGENT)).json() == []
    await api.post(f"/v1/tickets/{ticket['id']}/start", headers=AGENT)
    refused = await api.post(
        f"/v1/tickets/{ticket['id']}/resolve",
        json={"resolution": "已说明", "article_ids": [article["id"]]},
        headers=AGENT,
    )
    assert refused.status_code == 422
