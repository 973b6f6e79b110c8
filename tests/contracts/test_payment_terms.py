"""Structured payment terms: prepayment with a percentage, net N days, instalments; checked, and
described in the wording the document shows and the orders service reads."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from services.contracts.domain.payment import Instalment, PaymentPlan, PlanKind
from services.orders.domain.values import prepayment_pct_from_terms
from shared.domain import DomainError
from tests.conftest import System
from tests.contracts.test_review_api import REP, act, body, draft

PLANS = [
    (PaymentPlan(PlanKind.NET, net_days=45), "net 45 days", Decimal(0)),
    (PaymentPlan(PlanKind.PREPAYMENT, prepayment_pct=Decimal(100)), "100% prepayment", Decimal(100)),
    (
        PaymentPlan(PlanKind.PREPAYMENT, prepayment_pct=Decimal("30"), net_days=30),
        "30% prepayment, balance net 30 days",
        Decimal(30),
    ),
    (
        PaymentPlan(
            PlanKind.INSTALMENTS,
            instalments=(Instalment(Decimal("20.5"), 0), Instalment(Decimal("49.5"), 60), Instalment(Decimal(30), 90)),
        ),
        "instalments: 20.5% advance, 49.5% at 60 days, 30% at 90 days",
        Decimal("20.5"),
    ),
]


@pytest.mark.parametrize(("plan", "text", "prepaid"), PLANS, ids=["net", "full", "partial", "instalments"])
def test_a_plan_describes_itself_as_orders_reads_it(plan: PaymentPlan, text: str, prepaid: Decimal) -> None:
    plan.check()
    assert plan.describe() == text
    assert prepayment_pct_from_terms(text) == prepaid  # what the order will ask for before shipping


@pytest.mark.parametrize(
    "plan",
    [
        PaymentPlan(PlanKind.NET),
        PaymentPlan(PlanKind.NET, net_days=400),
        PaymentPlan(PlanKind.PREPAYMENT, prepayment_pct=Decimal(50)),  # the balance: when?
        PaymentPlan(PlanKind.PREPAYMENT, prepayment_pct=Decimal(100), net_days=30),
        PaymentPlan(PlanKind.INSTALMENTS, instalments=(Instalment(Decimal(100), 0),)),
        PaymentPlan(PlanKind.INSTALMENTS, instalments=(Instalment(Decimal(50), 0), Instalment(Decimal(40), 30))),
        PaymentPlan(PlanKind.INSTALMENTS, instalments=(Instalment(Decimal(50), 60), Instalment(Decimal(50), 30))),
    ],
)
def test_a_plan_that_does_not_add_up_is_refused(plan: PaymentPlan) -> None:
    with pytest.raises(DomainError):
        plan.check()


def test_free_text_beside_a_plan_must_restate_it() -> None:
    plan = PaymentPlan(PlanKind.PREPAYMENT, prepayment_pct=Decimal("30"), net_days=30)
    plan.check_stated(None)
    plan.check_stated("30% Prepayment,  balance net 30 DAYS")  # case and spacing aside, the same words
    for text in ("net 30", "30% prepayment, balance net 60 days", "100% prepayment"):
        with pytest.raises(DomainError, match="which reads '30% prepayment, balance net 30 days'"):
            plan.check_stated(text)


async def test_structured_terms_over_http(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    refused = await contracts.post(
        "/v1/contracts", json=body(payment_plan={"kind": "prepayment", "prepayment_pct": "50"}), headers=REP
    )
    assert refused.status_code == 422 and "balance" in refused.text
    prepaid = {"kind": "prepayment", "prepayment_pct": "30", "net_days": 30}
    # body() says "net 30": beside a 30 % prepayment plan that contradicts it, so nothing is drafted.
    contradicted = await contracts.post("/v1/contracts", json=body(payment_plan=prepaid), headers=REP)
    assert contradicted.status_code == 422 and contradicted.headers["content-type"].startswith("application/problem")
    assert "which reads '30% prepayment, balance net 30 days'" in contradicted.json()["detail"]
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.contracts") == 0
    restated = body(payment_plan=prepaid, payment_terms="30% prepayment, balance net 30 days")
    assert (await draft(contracts, restated)).json()["payment_terms"] == "30% prepayment, balance net 30 days"
    created = await draft(contracts, {**body(payment_plan=prepaid), "payment_terms": None})
    contract = created.json()
    assert contract["payment_terms"] == "30% prepayment, balance net 30 days"
    assert contract["payment_plan"]["kind"] == "prepayment" and contract["payment_plan"]["net_days"] == 30
    document = (await contracts.get(f"/v1/contracts/{contract['id']}/documents/1", headers=REP)).text
    assert "30% prepayment, balance net 30 days" in document

    plan = {"kind": "instalments", "instalments": [{"pct": "40", "due_days": 0}, {"pct": "60", "due_days": 90}]}
    amended = await act(contracts, created, "", REP, method="PATCH", payment_plan=plan)
    assert amended.json()["payment_terms"] == "instalments: 40% advance, 60% at 90 days"
    bad = {"kind": "instalments", "instalments": [{"pct": "40", "due_days": 0}, {"pct": "50", "due_days": 90}]}
    await act(contracts, amended, "", REP, method="PATCH", expect=422, payment_plan=bad)
    # Free text alone does not silently drop the plan; the plan stays and so does the contract.
    phoned = "net 60, as agreed by phone"
    kept = await act(contracts, amended, "", REP, method="PATCH", expect=422, payment_terms=phoned)
    assert "payment_plan null" in kept.json()["detail"]
    unchanged = await contracts.get(f"/v1/contracts/{contract['id']}", headers=REP)
    assert unchanged.headers["ETag"] == amended.headers["ETag"]
    text = await act(contracts, amended, "", REP, method="PATCH", payment_terms=phoned, payment_plan=None)
    assert text.json()["payment_plan"] is None and text.json()["payment_terms"] == phoned
    row = await clean_db.fetchrow(
        "SELECT payment_terms, payment_plan FROM contracts.contracts WHERE id = $1", text.json()["id"]
    )
    assert dict(row) == {"payment_terms": phoned, "payment_plan": None}
    # Free text in force: a plan may replace it (with no text, or its own wording).
    planned = await act(contracts, text, "", REP, method="PATCH", payment_plan={"kind": "net", "net_days": 45})
    assert planned.json()["payment_terms"] == "net 45 days"
