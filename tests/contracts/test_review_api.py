"""Legal review and approval routing over HTTP, against real PostgreSQL (events through the outbox)."""

from __future__ import annotations

import json

import asyncpg
import httpx

from shared.policies import discount_authority
from tests.conftest import System, auth
from tests.helpers import contract_payload

REP = auth("rep-1", "sales_rep")
OTHER_REP = auth("rep-2", "sales_rep")
LEGAL = auth("legal-1", "legal")
MANAGER = auth("manager-1", "sales_manager")
DIRECTOR = auth("director-1", "regional_director", region="east")
WEST_DIRECTOR = auth("director-2", "regional_director", region="west")
MARKETING = auth("marketing-1", "marketing_director")


def body(*, discount: str = "0", quantity: str = "2", **overrides) -> dict:
    payload = contract_payload("acme", discount_pct=discount, **overrides)
    payload["lines"][0]["quantity"] = quantity
    return payload


async def draft(contracts: httpx.AsyncClient, payload: dict, headers: dict = REP) -> httpx.Response:
    response = await contracts.post("/v1/contracts", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    return response


async def act(
    contracts: httpx.AsyncClient,
    response: httpx.Response,
    action: str,
    headers: dict,
    *,
    expect: int = 200,
    etag: str | None = "current",
    method: str = "POST",
    **json_body,
) -> httpx.Response:
    """POST an action on the contract in ``response`` (``""``: the contract itself, e.g. with PATCH),
    with its ETag as If-Match by default."""
    contract = response.json()
    extra = {} if etag is None else {"If-Match": response.headers["ETag"] if etag == "current" else etag}
    path = f"/v1/contracts/{contract['id']}" + (f"/{action}" if action else "")
    result = await contracts.request(method, path, headers={**headers, **extra}, json=json_body or None)
    assert result.status_code == expect, result.text
    return result


async def events(db: asyncpg.Connection, event_type: str) -> list[dict]:
    rows = await db.fetch(
        "SELECT envelope FROM contracts.outbox WHERE event_type = $1 ORDER BY created_at", f"{event_type}.v1"
    )
    return [json.loads(row["envelope"])["data"] for row in rows]


async def test_a_major_contract_beyond_the_reps_discount_goes_to_both_directors(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    # 2 x 1,500 x 400 + 300 = 1,200,300 less 12 % = 1,056,264.00 CNY: above the major amount.
    created = await draft(contracts, body(discount="12", quantity="800"))
    contract_id = created.json()["id"]
    submitted = await act(contracts, created, "submit", REP)
    assert submitted.json()["status"] == "in_review"
    assert (await events(clean_db, "contract.submitted"))[0]["revision"] == 1

    await act(contracts, submitted, "review", LEGAL, expect=428, etag=None, decision="approve")
    await act(contracts, submitted, "review", LEGAL, expect=412, etag='"1"', decision="approve")
    await act(contracts, submitted, "review", REP, expect=403, decision="approve")
    reviewed = await act(contracts, submitted, "review", LEGAL, decision="approve")
    contract = reviewed.json()
    assert (contract["status"], contract["pending_role"]) == ("pending_approval", "regional_director")
    policy = discount_authority()
    assert [(s["role"], s["rules"], s["policy_version"]) for s in contract["approvals"]] == [
        ("regional_director", ["discount"], policy.version),
        ("marketing_director", ["major_contract"], policy.version),
    ]

    await act(contracts, reviewed, "approve", DIRECTOR, expect=428, etag=None)
    await act(contracts, reviewed, "approve", DIRECTOR, expect=412, etag=submitted.headers["ETag"])
    await act(contracts, reviewed, "approve", MANAGER, expect=403)
    await act(contracts, reviewed, "approve", WEST_DIRECTOR, expect=403)
    first = await act(contracts, reviewed, "approve", DIRECTOR)
    assert (first.json()["status"], first.json()["pending_role"]) == ("pending_approval", "marketing_director")
    step = first.json()["approvals"][0]
    assert (step["decided_by"], step["decided_role"], step["authority_pct"], step["decided_policy_version"]) == (
        "director-1",
        "regional_director",
        "20",
        policy.version,
    )
    assert "12.00% exceeds the sales_rep authority of 5%" in step["threshold"]
    await act(contracts, reviewed, "approve", MARKETING, expect=412)  # the stale version is refused
    await act(contracts, first, "approve", DIRECTOR, expect=409)  # nobody decides two steps
    assert await events(clean_db, "contract.approved") == []

    approved = await act(contracts, first, "approve", MARKETING)
    assert approved.json()["status"] == "approved" and approved.json()["pending_role"] is None
    await act(contracts, approved, "approve", MARKETING, expect=409)  # approving twice
    (event,) = await events(clean_db, "contract.approved")
    assert event["contract_id"] == contract_id and event["approved_by"] == "marketing-1"
    assert [(a["role"], a["decided_by"], a["authority_pct"]) for a in event["approvals"]] == [
        ("regional_director", "director-1", "20"),
        ("marketing_director", "marketing-1", None),
    ]
    assert "major-contract amount of 1000000.00 CNY" in event["approvals"][1]["threshold"]
    assert event["policy_version"] == policy.version

    read = await contracts.get(f"/v1/contracts/{contract_id}", headers=MARKETING)
    assert read.headers["ETag"] == approved.headers["ETag"] and read.json()["approvals"] == approved.json()["approvals"]
    await act(contracts, approved, "submit", REP, expect=409)  # approved, not a draft


async def test_within_authority_legal_approval_approves(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    created = await draft(contracts, body(discount="5"))
    submitted = await act(contracts, created, "submit", REP)
    approved = await act(contracts, submitted, "review", LEGAL, decision="approve")
    assert approved.json()["status"] == "approved" and approved.json()["approvals"] == []
    (event,) = await events(clean_db, "contract.approved")
    assert event["approvals"] == [] and event["approved_by"] is None


async def test_changes_requested_and_rejection_return_to_draft_as_a_new_revision(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    created = await draft(contracts, body(discount="8"))
    submitted = await act(contracts, created, "submit", REP)

    # A change request without a comment is refused and writes nothing.
    await act(contracts, submitted, "review", LEGAL, expect=422, decision="request_changes")
    await act(contracts, submitted, "review", LEGAL, expect=422, decision="maybe")
    comments = [{"clause": "4.2", "comment": "add a liability cap"}, {"clause": "9", "comment": "governing law"}]
    await act(contracts, submitted, "review", LEGAL, expect=422, decision="request_changes", comments=comments * 2)
    assert (await contracts.get(f"/v1/contracts/{created.json()['id']}", headers=REP)).headers["ETag"] == (
        submitted.headers["ETag"]
    )
    returned = await act(contracts, submitted, "review", LEGAL, decision="request_changes", comments=comments)
    contract = returned.json()
    assert (contract["status"], contract["revision"]) == ("draft", 2)
    assert contract["reviews"][0]["comments"] == comments and contract["reviews"][0]["revision"] == 1
    (legal_event,) = await events(clean_db, "contract.rejected")
    assert (legal_event["stage"], legal_event["revision"], legal_event["role"]) == ("legal_review", 1, "legal")
    assert legal_event["comments"] == comments

    resubmitted = await act(contracts, returned, "submit", REP)
    in_approval = await act(contracts, resubmitted, "review", LEGAL, decision="approve")
    assert in_approval.json()["pending_role"] == "regional_director"
    await act(contracts, in_approval, "reject", DIRECTOR, expect=422, reason="")
    rejected = await act(contracts, in_approval, "reject", DIRECTOR, reason="8 % is too generous for this customer")
    assert (rejected.json()["status"], rejected.json()["revision"]) == ("draft", 3)
    step = rejected.json()["approvals"][0]
    assert (step["status"], step["revision"], step["decided_by"]) == ("rejected", 2, "director-1")
    approval_event = (await events(clean_db, "contract.rejected"))[1]
    assert (approval_event["stage"], approval_event["revision"], approval_event["authority_pct"]) == (
        "approval",
        2,
        "20",
    )
    assert approval_event["policy_version"] == discount_authority().version and "8.00%" in approval_event["threshold"]
    await act(contracts, rejected, "approve", DIRECTOR, expect=409)  # a draft has no approval pending


async def test_scoping_listing_and_no_signing_by_the_owner(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    minimal = await draft(contracts, contract_payload("acme"))  # the platform's minimal body
    await act(contracts, minimal, "submit", OTHER_REP, expect=404)  # another owner's contract
    await act(contracts, minimal, "review", LEGAL, expect=409, decision="approve")  # not in review
    # Signing happens only through both parties' signing links: there is no way for the owner.
    await act(contracts, minimal, "sign", REP, expect=404)
    signatories = {"customer_signatory": {"name": "Li Lei"}, "company_signatory": {"name": "Wang Fang"}}
    await act(contracts, minimal, "send-for-signature", REP, expect=409, **signatories)  # not approved

    other = await draft(contracts, contract_payload("acme"))
    await act(contracts, other, "submit", REP)
    page = await contracts.get("/v1/contracts", params={"status": "in_review"}, headers=LEGAL)
    assert [c["id"] for c in page.json()["items"]] == [other.json()["id"]]
    bad = await contracts.get("/v1/contracts", params={"status": "lost"}, headers=LEGAL)
    assert bad.status_code == 422
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.contracts") == 2


async def test_a_price_below_the_reps_authority_goes_to_the_marketing_director(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    payload = body()
    payload["lines"][0]["unit_price"] = "1000.00"  # PUMP-1's authority price is 1,200.00 CNY
    submitted = await act(contracts, await draft(contracts, payload), "submit", REP)
    reviewed = await act(contracts, submitted, "review", LEGAL, decision="approve")
    contract = reviewed.json()
    assert (contract["status"], contract["pending_role"]) == ("pending_approval", "marketing_director")
    [step] = contract["approvals"]
    assert step["rules"] == ["price_floor"] and step["policy_version"] == discount_authority().version
    await act(contracts, reviewed, "approve", DIRECTOR, expect=403)  # a regional director is not enough
    approved = await act(contracts, reviewed, "approve", MARKETING)
    assert approved.json()["status"] == "approved"
    (event,) = await events(clean_db, "contract.approved")
    [decision] = event["approvals"]
    assert decision["decided_role"] == "marketing_director" and decision["threshold"] == (
        "PUMP-1 at 1000.00 CNY is below the sales_rep authority price of 1200.00 CNY"
    )
