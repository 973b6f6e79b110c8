"""Signing links: one per party, stored hashed, single use, expiring, revocable (real PostgreSQL)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.contracts import handlers
from services.contracts.db import platform_tables
from services.contracts.domain.signing import LinkRefused, LinkState, Party, Signatory, SigningLink
from shared.db import create_engine
from shared.domain import DomainError
from shared.uow import UnitOfWork
from tests.conftest import System, settings_for
from tests.contracts.test_review_api import LEGAL, OTHER_REP, REP, act, body, draft, events

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SIGNATORIES = {
    "customer_signatory": {"name": "Li Lei", "email": "li@example.com"},
    "company_signatory": {"name": "Wang Fang"},
}


def test_a_link_is_single_use_expiring_revocable_and_bound_to_its_revision():
    link, token = SigningLink.issue(
        contract_id=uuid.uuid4(),
        revision=2,
        party=Party.CUSTOMER,
        signatory=Signatory("Li Lei"),
        now=NOW,
        ttl=timedelta(hours=1),
    )
    assert len(token) >= 43 and link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(link)
    used = link.used(NOW, revision=2)
    with pytest.raises(LinkRefused):
        used.used(NOW, revision=2)
    with pytest.raises(LinkRefused):
        link.check_usable(NOW, revision=3)  # the document changed since
    with pytest.raises(LinkRefused):
        link.check_usable(NOW + timedelta(hours=1), revision=2)
    assert link.state(NOW + timedelta(hours=1)) == LinkState.EXPIRED
    revoked = link.revoked(NOW, by="rep-1")
    assert revoked.state(NOW) == LinkState.REVOKED
    with pytest.raises(LinkRefused):
        revoked.check_usable(NOW, revision=2)
    with pytest.raises(DomainError):
        revoked.revoked(NOW, by="rep-1")
    with pytest.raises(DomainError):
        SigningLink.issue(
            contract_id=link.contract_id,
            revision=1,
            party=Party.COMPANY,
            signatory=Signatory("x"),
            now=NOW,
            ttl=timedelta(days=31),
        )


async def approved_contract(contracts: httpx.AsyncClient) -> httpx.Response:
    submitted = await act(contracts, await draft(contracts, body()), "submit", REP)
    approved = await act(contracts, submitted, "review", LEGAL, decision="approve")
    assert approved.json()["status"] == "approved"
    return approved


async def open_link(token: str, *, now: datetime | None = None):
    settings = settings_for("contracts")
    engine = create_engine(settings)
    try:
        return await handlers.open_signing_link(token, UnitOfWork(engine, platform_tables, settings.source), now=now)
    finally:
        await engine.dispose()


async def test_sending_for_signature_issues_one_hashed_link_per_party(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    created = await draft(contracts, body())
    await act(contracts, created, "send-for-signature", REP, expect=409, **SIGNATORIES)  # a draft
    approved = await approved_contract(contracts)
    contract_id = approved.json()["id"]
    await act(contracts, approved, "send-for-signature", REP, expect=428, etag=None, **SIGNATORIES)
    await act(contracts, approved, "send-for-signature", OTHER_REP, expect=404, **SIGNATORIES)
    await act(contracts, approved, "send-for-signature", REP, expect=422, customer_signatory={"name": "x"})
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.signing_links") == 0

    sent = await act(contracts, approved, "send-for-signature", REP, expires_in_hours=48, **SIGNATORIES)
    result = sent.json()
    assert result["contract"]["status"] == "out_for_signature"
    links = {link["party"]: link for link in result["links"]}
    assert set(links) == {"customer", "company"} and links["customer"]["signatory_name"] == "Li Lei"
    assert all(link["state"] == "active" and link["revision"] == 1 for link in links.values())
    stored = {r["party"]: r for r in await clean_db.fetch("SELECT * FROM contracts.signing_links")}
    for party, link in links.items():  # only the hash is stored
        assert stored[party]["token_hash"] == hashlib.sha256(link["token"].encode()).hexdigest()
        assert link["token"] not in str(dict(stored[party]))
    (event,) = await events(clean_db, "contract.sent_for_signature")
    assert {p["party"] for p in event["parties"]} == {"customer", "company"} and event["sent_by"] == "rep-1"
    assert links["customer"]["token"] not in str(event)
    await act(contracts, approved, "send-for-signature", REP, expect=409, etag=sent.headers["ETag"], **SIGNATORIES)

    view = await open_link(links["customer"]["token"])
    assert (str(view.contract.id), view.link.party) == (contract_id, Party.CUSTOMER)
    with pytest.raises(LinkRefused):
        await open_link(links["customer"]["token"], now=datetime.now(UTC) + timedelta(hours=49))  # expired
    with pytest.raises(LinkRefused):
        await open_link("not-a-token")

    listed = await contracts.get(f"/v1/contracts/{contract_id}/signing-links", headers=REP)
    assert [link["party"] for link in listed.json()] and all("token" not in link for link in listed.json())
    assert (await contracts.get(f"/v1/contracts/{contract_id}/signing-links", headers=OTHER_REP)).status_code == 404


async def test_revoked_links_are_refused_and_a_party_can_get_a_new_one(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    approved = await approved_contract(contracts)
    contract_id = approved.json()["id"]
    sent = await act(contracts, approved, "send-for-signature", REP, **SIGNATORIES)
    customer = next(link for link in sent.json()["links"] if link["party"] == "customer")

    revoke = f"/v1/contracts/{contract_id}/signing-links/{customer['id']}/revoke"
    assert (await contracts.post(revoke, headers=OTHER_REP)).status_code == 404
    revoked = await contracts.post(revoke, headers=REP)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert (await contracts.post(revoke, headers=REP)).status_code == 422  # already revoked
    with pytest.raises(LinkRefused):
        await open_link(customer["token"])

    reissued = await contracts.post(
        f"/v1/contracts/{contract_id}/signing-links", json={"party": "customer"}, headers=REP
    )
    assert reissued.status_code == 201, reissued.text
    fresh = reissued.json()
    assert fresh["signatory_name"] == "Li Lei" and fresh["token"] != customer["token"]
    link = (await open_link(fresh["token"])).link
    assert link.id == uuid.UUID(fresh["id"])
    again = await contracts.post(f"/v1/contracts/{contract_id}/signing-links", json={"party": "customer"}, headers=REP)
    with pytest.raises(LinkRefused):  # reissuing revokes the party's active link
        await open_link(fresh["token"])
    states = [
        (x["party"], x["state"])
        for x in (await contracts.get(f"/v1/contracts/{contract_id}/signing-links", headers=REP)).json()
    ]
    assert sorted(states) == sorted(
        [("customer", "revoked"), ("company", "active"), ("customer", "revoked"), ("customer", "active")]
    )
    assert again.status_code == 201
