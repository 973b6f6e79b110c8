"""After signing: active → completed / terminated with reasons (``contract.terminated``), and the
audit trail of everything that happened to a contract (``GET /v1/contracts/{id}/history``)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import System
from tests.contracts.test_review_api import DIRECTOR, LEGAL, MARKETING, OTHER_REP, REP, act, body, draft, events
from tests.contracts.test_signing_page import sign_through_api


async def current(contracts, contract_id: str):
    response = await contracts.get(f"/v1/contracts/{contract_id}", headers=REP)
    assert response.status_code == 200
    return response


async def test_active_then_completed_with_the_whole_history(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    drafted = await draft(contracts, body())
    await act(contracts, drafted, "activate", REP, expect=409)  # a draft is not in force
    signed = await sign_through_api(contracts, drafted)
    read = await current(contracts, signed["id"])
    await act(contracts, read, "complete", REP, expect=409, reason="done")  # signed, not yet active
    await act(contracts, read, "activate", REP, expect=428, etag=None)
    active = await act(contracts, read, "activate", REP)
    assert active.json()["status"] == "active" and active.json()["activated_at"]
    await act(contracts, active, "complete", REP, expect=422, reason="")
    completed = await act(contracts, active, "complete", REP, reason="delivered, installed and paid")
    result = completed.json()
    assert (result["status"], result["end_reason"], result["ended_by"]) == (
        "completed",
        "delivered, installed and paid",
        "rep-1",
    )
    await act(contracts, completed, "terminate", REP, expect=409, reason="too late")
    assert await events(clean_db, "contract.terminated") == []

    url = f"/v1/contracts/{signed['id']}/history"
    first = await contracts.get(url, params={"limit": 4}, headers=LEGAL)
    assert first.status_code == 200 and first.json()["next_cursor"] and 'rel="next"' in first.headers["Link"]
    entries = first.json()["items"]
    cursor = first.json()["next_cursor"]
    while cursor:
        page = (await contracts.get(url, params={"limit": 4, "cursor": cursor}, headers=LEGAL)).json()
        entries += page["items"]
        cursor = page["next_cursor"]
    assert [e["action"] for e in entries] == [
        "drafted",
        "submitted",
        "legal_review",
        "approved",
        "sent_for_signature",
        "signature",
        "signature",
        "signed",
        "archived",
        "activated",
        "completed",
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["drafted"]["actor"] == "rep-1" and by_action["legal_review"]["actor"] == "legal-1"
    assert by_action["legal_review"]["detail"]["decision"] == "approve"
    signatures = [e for e in entries if e["action"] == "signature"]
    assert [(e["actor"], e["detail"]["party"]) for e in signatures] == [
        ("Li Lei", "customer"),
        ("Wang Fang", "company"),
    ]
    assert all(e["detail"]["document_sha256"] == signed["document_sha256"] for e in signatures)
    assert by_action["completed"]["detail"]["reason"] == "delivered, installed and paid"
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    assert (await contracts.get(url, headers=OTHER_REP)).status_code == 404
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the trail is append-only
        await clean_db.execute("DELETE FROM contracts.contract_history")


async def test_terminating_emits_contract_terminated_with_the_reason(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    await act(contracts, await draft(contracts, body()), "terminate", REP, expect=409, reason="x")  # a draft
    signed = await sign_through_api(contracts, await draft(contracts, body()))
    read = await current(contracts, signed["id"])
    await act(contracts, read, "terminate", OTHER_REP, expect=404, reason="not mine")
    await act(contracts, read, "terminate", REP, expect=422)  # no reason
    terminated = await act(contracts, read, "terminate", REP, reason="customer went bankrupt")
    assert terminated.json()["status"] == "terminated"
    (event,) = await events(clean_db, "contract.terminated")
    assert (event["contract_id"], event["previous_status"], event["reason"], event["terminated_by"]) == (
        signed["id"],
        "signed",
        "customer went bankrupt",
        "rep-1",
    )
    history = (await contracts.get(f"/v1/contracts/{signed['id']}/history", headers=MARKETING)).json()["items"]
    assert history[-1]["action"] == "terminated" and history[-1]["detail"]["reason"] == "customer went bankrupt"


async def test_the_history_records_amendments_approvals_and_link_changes(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    created = await draft(contracts, body(discount="12", quantity="800"))  # both directors
    amended = await act(contracts, created, "", REP, method="PATCH", payment_terms="net 45")
    submitted = await act(contracts, amended, "submit", REP)
    reviewed = await act(contracts, submitted, "review", LEGAL, decision="approve")
    step = await act(contracts, reviewed, "approve", DIRECTOR)
    approved = await act(contracts, step, "approve", MARKETING)
    sent = await act(
        contracts,
        approved,
        "send-for-signature",
        REP,
        customer_signatory={"name": "Li Lei"},
        company_signatory={"name": "Wang Fang"},
    )
    customer = next(link for link in sent.json()["links"] if link["party"] == "customer")
    contract_id = created.json()["id"]
    assert (
        await contracts.post(f"/v1/contracts/{contract_id}/signing-links/{customer['id']}/revoke", headers=REP)
    ).status_code == 200
    history = (await contracts.get(f"/v1/contracts/{contract_id}/history", headers=REP)).json()["items"]
    actions = [e["action"] for e in history]
    assert actions == [
        "drafted",
        "amended",
        "submitted",
        "legal_review",
        "approval_approved",
        "approval_approved",
        "approved",
        "sent_for_signature",
        "signing_link_revoked",
    ]
    assert history[1]["detail"]["terms"] == ["payment_terms"]
    decisions = [e for e in history if e["action"] == "approval_approved"]
    assert [(e["actor"], e["detail"]["decided_role"]) for e in decisions] == [
        ("director-1", "regional_director"),
        ("marketing-1", "marketing_director"),
    ]
    assert decisions[0]["detail"]["authority_pct"] == "20" and "12.00%" in decisions[0]["detail"]["threshold"]
