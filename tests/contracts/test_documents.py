"""Contract documents: rendered from the Jinja2 template, one version per change, each kept with
its SHA-256; a changed document invalidates the signing links still out (real PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib

import asyncpg
import pytest

from services.contracts.domain.signing import LinkRefused
from tests.conftest import System
from tests.contracts.test_review_api import LEGAL, OTHER_REP, REP, act, body, draft
from tests.contracts.test_signing_links import SIGNATORIES, approved_contract, open_link


async def tamper(db: asyncpg.Connection, sql: str) -> None:
    """Someone with superuser access changes stored rows behind the service's back: the
    append-only triggers do not fire for replication sessions."""
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute(sql)


async def test_each_change_is_a_new_document_version_with_its_sha256(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    created = await draft(contracts, body())
    contract = created.json()
    url = f"/v1/contracts/{contract['id']}/documents"
    [first] = (await contracts.get(url, headers=REP)).json()
    assert (first["version"], first["revision"], contract["document_version"]) == (1, 1, 1)

    served = await contracts.get(f"{url}/1", headers=REP)
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
    digest = hashlib.sha256(served.content).digest()
    assert first["sha256"] == contract["document_sha256"] == digest.hex()
    assert served.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    text = served.text
    assert contract["number"] in text and "销售合同" in text and "acme Ltd." in text and "3,300" not in text
    assert "3300.00" in text and "1 Century Ave, Shanghai" in text and "12 个月" in text

    amended = await act(contracts, created, "", REP, method="PATCH", payment_terms="prepayment 30 %, rest net 30")
    assert amended.json()["status"] == "draft" and amended.json()["revision"] == 1
    assert amended.json()["document_version"] == 2
    same = await act(contracts, amended, "", REP, method="PATCH", payment_terms="prepayment 30 %, rest net 30")
    assert same.json()["document_version"] == 2  # the same text is not a new version
    second = (await contracts.get(f"{url}/2", headers=REP)).text
    assert "prepayment 30 %, rest net 30" in second and second != text
    assert [d["version"] for d in (await contracts.get(url, headers=REP)).json()] == [1, 2]

    # Legal asks for changes: the next revision is a new document version.
    submitted = await act(contracts, same, "submit", REP)
    await act(
        contracts, submitted, "review", LEGAL, decision="request_changes", comments=[{"clause": "3", "comment": "x"}]
    )
    documents = (await contracts.get(url, headers=REP)).json()
    assert [(d["version"], d["revision"]) for d in documents] == [(1, 1), (2, 1), (3, 2)]
    assert "第 2 版" in (await contracts.get(f"{url}/3", headers=REP)).text

    assert (await contracts.get(url, headers=OTHER_REP)).status_code == 404
    assert (await contracts.get(f"{url}/1", headers=OTHER_REP)).status_code == 404
    assert (await contracts.get(f"{url}/9", headers=REP)).status_code == 404


async def test_amendments_are_checked_and_need_the_current_etag(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    created = await draft(contracts, body())
    await act(contracts, created, "", REP, method="PATCH", expect=428, etag=None, payment_terms="net 60")
    await act(contracts, created, "", REP, method="PATCH", expect=412, etag='"99"', payment_terms="net 60")
    await act(contracts, created, "", OTHER_REP, method="PATCH", expect=404, payment_terms="net 60")
    await act(contracts, created, "", REP, method="PATCH", expect=422, payment_terms=None)
    await act(contracts, created, "", REP, method="PATCH", expect=422, discount_pct="100")
    await act(contracts, created, "", REP, method="PATCH", expect=422, lines=[])
    empty = await contracts.patch(
        f"/v1/contracts/{created.json()['id']}", json={}, headers={**REP, "If-Match": created.headers["ETag"]}
    )
    assert empty.status_code == 422
    row = await clean_db.fetchrow("SELECT version, document_version, payment_terms FROM contracts.contracts")
    assert dict(row) == {"version": 1, "document_version": 1, "payment_terms": "net 30"}


async def test_a_changed_document_invalidates_the_outstanding_links(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    sent = await act(contracts, await approved_contract(contracts), "send-for-signature", REP, **SIGNATORIES)
    links = sent.json()["links"]
    await open_link(links[0]["token"])  # usable before the change

    contract = sent.json()["contract"]
    amended = await contracts.patch(
        f"/v1/contracts/{contract['id']}",
        json={"delivery_address": "2 Nanjing Rd, Shanghai"},
        headers={**REP, "If-Match": sent.headers["ETag"]},
    )
    assert amended.status_code == 200, amended.text
    result = amended.json()
    assert (result["status"], result["revision"], result["document_version"]) == ("draft", 2, 2)
    for link in links:
        with pytest.raises(LinkRefused):
            await open_link(link["token"])
    listed = await contracts.get(f"/v1/contracts/{contract['id']}/signing-links", headers=REP)
    assert {x["state"] for x in listed.json()} == {"revoked"}
    history = (await contracts.get(f"/v1/contracts/{contract['id']}/history", headers=REP)).json()["items"]
    assert [e["action"] for e in history[-3:]] == ["amended", "signing_link_revoked", "signing_link_revoked"]
    assert {e["detail"]["party"] for e in history[-2:]} == {"customer", "company"}


async def test_a_tampered_document_is_never_served(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    contract = (await draft(contracts, body())).json()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # append-only, for the service's role too
        await clean_db.execute("UPDATE contracts.contract_documents SET content = 'x'")
    await tamper(clean_db, "UPDATE contracts.contract_documents SET content = replace(content, '3300.00', '33.00')")
    served = await contracts.get(f"/v1/contracts/{contract['id']}/documents/1", headers=REP)
    assert served.status_code == 409 and served.headers["content-type"].startswith("application/problem+json")
    assert "33.00" not in served.text


async def test_special_clauses_and_included_service_are_stated(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    await draft_refused(contracts, special_clauses=[""])
    await draft_refused(contracts, free_revisions=-1)
    created = await draft(
        contracts,
        body(
            special_clauses=["安装完成后 7 日内验收。", "Acceptance within 7 days of installation."], free_revisions=2
        ),
    )
    contract = created.json()
    assert contract["special_clauses"][1] == "Acceptance within 7 days of installation."
    assert (contract["free_revisions"], contract["paid_service_included"]) == (2, False)
    url = f"/v1/contracts/{contract['id']}/documents"
    first = (await contracts.get(f"{url}/1", headers=REP)).text
    assert "特别条款" in first and "1. 安装完成后 7 日内验收。" in first and "Included: 2" in first
    assert "Not included; agreed separately" in first

    amended = await act(contracts, created, "", REP, method="PATCH", paid_service_included=True, special_clauses=[])
    assert amended.json()["document_version"] == 2 and amended.json()["special_clauses"] == []
    second = (await contracts.get(f"{url}/2", headers=REP)).text
    assert "Included in this contract" in second and "特别条款" not in second
    await act(contracts, amended, "", REP, method="PATCH", expect=422, special_clauses=None)


async def draft_refused(contracts, **overrides) -> None:
    response = await contracts.post("/v1/contracts", json=body(**overrides), headers=REP)
    assert response.status_code == 422, response.text
