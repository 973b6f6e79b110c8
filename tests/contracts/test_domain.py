"""The contract state machine and approval routing (pure domain, no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.contracts.documents import next_document
from services.contracts.domain import (
    ClauseComment,
    Contract,
    ContractLine,
    ContractStatus,
    NotAnApprover,
    ReviewDecision,
    StepStatus,
)
from services.contracts.domain.approval import route
from services.contracts.domain.contract import TRANSITIONS
from services.contracts.domain.document import DocumentTampered
from services.contracts.domain.signing import Party, Signatory, Signature, SignatureRefused, SigningLink
from shared.domain import DomainError, InvalidTransition
from shared.events import ContractApproved, ContractRejected, ContractSigned, ContractSubmitted
from shared.policies import discount_authority, parse_discount_authority

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
POLICY = discount_authority()
LEGAL = frozenset({"legal"})
RD = frozenset({"regional_director"})
MD = frozenset({"marketing_director"})


def contract(*, discount: str = "0", unit_price: str = "1000.00", quantity: str = "10", currency: str = "CNY"):
    c = Contract.draft(
        id=uuid.uuid4(),
        number="HT-2026-000001",
        customer_id="acme",
        customer_name="Acme",
        owner_id="rep-1",
        currency=currency,
        lines=[ContractLine(sku="P", description="Pump", quantity=Decimal(quantity), unit_price=Decimal(unit_price))],
        payment_terms="net 30",
        created_at=NOW,
        region="east",
        discount_pct=Decimal(discount),
    )
    c.take_events()
    return c


def in_approval(c: Contract) -> Contract:
    c.submit(by="rep-1", now=NOW)
    c.review(by="legal-1", decision=ReviewDecision.APPROVE, now=NOW, policy=POLICY)
    c.take_events()
    return c


def test_within_the_owners_authority_legal_approval_approves():
    c = contract(discount="5")
    c.submit(by="rep-1", now=NOW)
    assert c.status == ContractStatus.IN_REVIEW
    c.review(by="legal-1", decision=ReviewDecision.APPROVE, now=NOW, policy=POLICY)
    assert c.status == ContractStatus.APPROVED and c.current_steps == []
    events = [e for e, _ in c.take_events()]
    assert [type(e) for e in events] == [ContractSubmitted, ContractApproved]
    assert events[1].approvals == () and events[1].policy_version == POLICY.version


def test_discount_beyond_the_reps_authority_needs_the_regional_director_even_within_a_managers():
    c = in_approval(contract(discount="8"))
    assert c.status == ContractStatus.PENDING_APPROVAL
    (step,) = c.current_steps
    assert (step.role, step.rules) == ("regional_director", ("discount",))
    assert "8.00% exceeds the sales_rep authority of 5%" in step.threshold
    with pytest.raises(NotAnApprover):
        c.approve(by="mgr-1", roles=frozenset({"sales_manager"}), now=NOW, policy=POLICY)
    decided = c.approve(by="rd-1", roles=RD, now=NOW, policy=POLICY, region="east")
    assert (decided.decided_by, decided.decided_role, decided.authority_pct) == ("rd-1", "regional_director", 20)
    assert decided.decided_policy_version == POLICY.version
    assert c.status == ContractStatus.APPROVED
    (event,) = [e for e, _ in c.take_events()]
    assert isinstance(event, ContractApproved) and event.approvals[0].threshold == step.threshold


def test_discount_beyond_the_directors_authority_needs_the_marketing_director():
    c = in_approval(contract(discount="25"))
    assert [s.role for s in c.current_steps] == ["marketing_director"]
    with pytest.raises(NotAnApprover):
        c.approve(by="rd-1", roles=RD, now=NOW, policy=POLICY)
    c.approve(by="md-1", roles=MD, now=NOW, policy=POLICY)
    assert c.status == ContractStatus.APPROVED


def test_major_contract_needs_the_marketing_director_after_the_regional_director():
    c = in_approval(contract(discount="8", quantity="1000"))  # 1,000 x 1,000 less 8 % = 920,000
    assert [s.role for s in c.current_steps] == ["regional_director"]
    c = in_approval(contract(discount="8", quantity="2000"))  # 1,840,000 CNY > 1,000,000
    assert [(s.role, s.rules) for s in c.current_steps] == [
        ("regional_director", ("discount",)),
        ("marketing_director", ("major_contract",)),
    ]
    c.approve(by="rd-1", roles=RD, now=NOW, policy=POLICY)
    assert c.status == ContractStatus.PENDING_APPROVAL and c.pending_step.role == "marketing_director"
    with pytest.raises(InvalidTransition, match="already decided"):
        c.approve(by="rd-1", roles=RD | MD, now=NOW, policy=POLICY)
    c.approve(by="md-1", roles=MD, now=NOW, policy=POLICY)
    assert c.status == ContractStatus.APPROVED
    with pytest.raises(InvalidTransition):
        c.approve(by="md-2", roles=MD, now=NOW, policy=POLICY)


def test_a_currency_without_a_major_amount_is_always_major():
    steps = route(POLICY, revision=1, owner_role="sales_rep", discount_pct=Decimal(0), total=Decimal(1), currency="JPY")
    assert [(s.role, s.rules) for s in steps] == [("marketing_director", ("major_contract",))]


def test_routing_follows_the_policy_data():
    document = {
        "version": "test.1",
        "levels": [
            {"role": "sales_rep", "max_discount_pct": "2"},
            {"role": "sales_manager", "max_discount_pct": "10"},
            {"role": "regional_director", "max_discount_pct": "20"},
            {"role": "marketing_director", "max_discount_pct": None},
        ],
        "contracts": {
            "discount_approver_min_role": "sales_manager",
            "major_contract": {"approver_role": "marketing_director", "amounts": {"CNY": "500"}},
        },
    }
    policy = parse_discount_authority(document)
    steps = route(
        policy, revision=3, owner_role="sales_rep", discount_pct=Decimal(3), total=Decimal(600), currency="CNY"
    )
    assert [(s.role, s.policy_version, s.revision) for s in steps] == [
        ("sales_manager", "test.1", 3),
        ("marketing_director", "test.1", 3),
    ]
    document["contracts"]["discount_approver_min_role"] = "ceo"
    with pytest.raises(ValueError):
        parse_discount_authority(document)


def pumps(unit_price: str, *, line_discount: str = "0", discount: str = "0") -> Contract:
    c = Contract.draft(
        id=uuid.uuid4(),
        number="HT-2026-000002",
        customer_id="acme",
        customer_name="Acme",
        owner_id="rep-1",
        currency="CNY",
        lines=[
            ContractLine(
                sku="PUMP-1",
                description="Pump",
                quantity=Decimal(1),
                unit_price=Decimal(unit_price),
                discount_pct=Decimal(line_discount),
            )
        ],
        payment_terms="net 30",
        created_at=NOW,
        region="east",
        discount_pct=Decimal(discount),
    )
    c.take_events()
    return c


def test_a_price_below_the_reps_authority_needs_the_marketing_director():
    floor = POLICY.contracts.price_floor("CNY", "PUMP-1")
    assert floor == Decimal("1200.00") and POLICY.contracts.price_authority_role == "marketing_director"
    at_floor = in_approval(pumps("1200.00"))
    assert at_floor.status == ContractStatus.APPROVED  # not below: nothing to approve

    # 1,250.00 less 3 % on the line and 3 % on the contract is 1,176.13 (5.91 % off): beyond the
    # rep's discount authority, and below the authority price as well.
    below = in_approval(pumps("1250.00", line_discount="3", discount="3"))
    assert [(s.role, s.rules) for s in below.current_steps] == [
        ("regional_director", ("discount",)),
        ("marketing_director", ("price_floor",)),
    ]
    assert "PUMP-1 at 1176.13 CNY is below the sales_rep authority price of 1200.00 CNY" in below.approvals[1].threshold
    cheap = in_approval(pumps("900.00"))  # no discount at all
    assert [(s.role, s.rules) for s in cheap.current_steps] == [("marketing_director", ("price_floor",))]
    with pytest.raises(NotAnApprover):
        cheap.approve(by="rd-1", roles=RD, now=NOW, policy=POLICY)
    cheap.approve(by="md-1", roles=MD, now=NOW, policy=POLICY)
    [(event, _)] = cheap.take_events()
    assert isinstance(event, ContractApproved) and event.approvals[0].threshold.startswith("PUMP-1 at 900.00 CNY")
    assert in_approval(pumps("900.00")).current_steps[0].policy_version == POLICY.version


def test_price_floors_are_policy_data():
    document = {
        "version": "test.2",
        "levels": [
            {"role": "sales_rep", "max_discount_pct": "5"},
            {"role": "marketing_director", "max_discount_pct": None},
        ],
        "contracts": {
            "discount_approver_min_role": "marketing_director",
            "major_contract": {"approver_role": "marketing_director", "amounts": {"CNY": "500000"}},
            "price_authority": {"approver_role": "marketing_director", "floors": {"USD": {"X": "10"}}},
        },
    }
    policy = parse_discount_authority(document)
    assert policy.contracts.price_floor("USD", "X") == Decimal(10) and policy.contracts.price_floor("CNY", "X") is None
    steps = route(
        policy,
        revision=1,
        owner_role="sales_rep",
        discount_pct=Decimal(0),
        total=Decimal(9),
        currency="USD",
        net_prices=(("X", Decimal("9.99")), ("Y", Decimal("0.01"))),
    )
    assert [(s.role, s.rules) for s in steps] == [("marketing_director", ("major_contract", "price_floor"))]
    document["contracts"]["price_authority"]["floors"]["USD"]["X"] = "0"
    with pytest.raises(ValueError):
        parse_discount_authority(document)
    document["contracts"]["price_authority"] = {"approver_role": "ceo", "floors": {}}
    with pytest.raises(ValueError):
        parse_discount_authority(document)


def test_rejection_returns_to_draft_as_a_new_revision_with_the_decision_recorded():
    c = in_approval(contract(discount="12"))
    with pytest.raises(DomainError):
        c.reject(by="rd-1", roles=RD, reason=" ", now=NOW, policy=POLICY)
    c.reject(by="rd-1", roles=RD, reason="too generous", now=NOW, policy=POLICY)
    assert (c.status, c.revision) == (ContractStatus.DRAFT, 2)
    (step,) = c.approvals
    assert (step.status, step.revision, step.reason) == (StepStatus.REJECTED, 1, "too generous")
    (event,) = [e for e, _ in c.take_events()]
    assert isinstance(event, ContractRejected)
    assert (event.stage, event.revision, event.role, event.authority_pct) == ("approval", 1, "regional_director", 20)
    assert event.policy_version == POLICY.version and "12.00%" in event.threshold
    c.submit(by="rep-1", now=NOW)  # the new revision goes round again
    c.review(by="legal-1", decision=ReviewDecision.APPROVE, now=NOW, policy=POLICY)
    assert [s.revision for s in c.current_steps] == [2]


def test_rejecting_the_first_of_two_steps_supersedes_the_second():
    c = in_approval(contract(discount="8", quantity="2000"))
    c.reject(by="rd-1", roles=RD, reason="no", now=NOW, policy=POLICY)
    assert [s.status for s in c.approvals] == [StepStatus.REJECTED, StepStatus.SUPERSEDED]


def test_legal_requests_changes_per_clause():
    c = contract()
    c.submit(by="rep-1", now=NOW)
    with pytest.raises(DomainError, match="at least one comment"):
        c.review(by="legal-1", decision=ReviewDecision.REQUEST_CHANGES, now=NOW, policy=POLICY)
    comments = (ClauseComment("4.2", "liability cap missing"), ClauseComment("7", "governing law"))
    c.review(by="legal-1", decision=ReviewDecision.REQUEST_CHANGES, now=NOW, policy=POLICY, comments=comments)
    assert (c.status, c.revision, c.reviews[0].comments) == (ContractStatus.DRAFT, 2, comments)
    event = [e for e, _ in c.take_events()][-1]
    assert event.stage == "legal_review" and [x.clause for x in event.comments] == ["4.2", "7"]


def test_nobody_approves_or_reviews_their_own_contract():
    c = contract()
    c.submit(by="rep-1", now=NOW)
    with pytest.raises(NotAnApprover):
        c.review(by="rep-1", decision=ReviewDecision.APPROVE, now=NOW, policy=POLICY)
    c = in_approval(contract(discount="12"))
    with pytest.raises(NotAnApprover):
        c.approve(by="rep-1", roles=RD, now=NOW, policy=POLICY)


def test_a_regional_director_approves_only_for_their_region():
    c = in_approval(contract(discount="12"))
    with pytest.raises(NotAnApprover, match="own region"):
        c.approve(by="rd-2", roles=RD, now=NOW, policy=POLICY, region="west")
    c.approve(by="md-1", roles=MD, now=NOW, policy=POLICY, region="west")  # higher authority may
    assert c.approvals[0].decided_role == "marketing_director" and c.approvals[0].authority_pct is None


@pytest.mark.parametrize(
    ("action", "status"),
    [("submit", ContractStatus.IN_REVIEW), ("approve", ContractStatus.DRAFT), ("review", ContractStatus.DRAFT)],
)
def test_invalid_transitions_are_refused(action, status):
    c = contract()
    if status == ContractStatus.IN_REVIEW:
        c.submit(by="rep-1", now=NOW)
    with pytest.raises(InvalidTransition):
        if action == "submit":
            c.submit(by="rep-1", now=NOW)
        elif action == "approve":
            c.approve(by="rd-1", roles=RD, now=NOW, policy=POLICY)
        else:
            c.review(by="legal-1", decision=ReviewDecision.APPROVE, now=NOW, policy=POLICY)
    assert c.status == status


def test_only_both_parties_signatures_over_the_current_document_sign_it():
    c = contract()
    document = next_document(c, NOW)
    assert document is not None and c.document_sha256 == document.sha256

    def signature(link: SigningLink, sha256: str = document.sha256) -> Signature:
        return Signature.by_link(
            link,
            typed_name=link.signatory.name,
            confirmed=True,
            document_version=document.version,
            document_sha256=sha256,
            now=NOW,
            ip="10.0.0.1",
            user_agent="phone",
        )

    links = {
        party: SigningLink.issue(
            contract_id=c.id, revision=1, party=party, signatory=Signatory(party.value), now=NOW, ttl=timedelta(days=1)
        )[0]
        for party in Party
    }
    with pytest.raises(InvalidTransition):  # a draft is never signed
        c.sign(signature(links[Party.CUSTOMER]), document)
    in_approval(c)
    c.send_for_signature(list(links.values()), by="rep-1", now=NOW)
    c.take_events()
    with pytest.raises(DocumentTampered):
        c.sign(signature(links[Party.CUSTOMER]), replace(document, content=document.content + " "))
    with pytest.raises(SignatureRefused):
        Signature.by_link(
            links[Party.COMPANY],
            typed_name="someone else",
            confirmed=True,
            document_version=1,
            document_sha256=document.sha256,
            now=NOW,
            ip=None,
            user_agent=None,
        )
    c.sign(signature(links[Party.CUSTOMER]), document)
    assert c.status == ContractStatus.OUT_FOR_SIGNATURE and c.take_events() == []
    with pytest.raises(InvalidTransition):  # each party signs once
        c.sign(signature(links[Party.CUSTOMER]), document)
    c.sign(signature(links[Party.COMPANY]), document)
    assert c.status == ContractStatus.SIGNED and c.signed_at == NOW
    [(event, _)] = c.take_events()
    assert isinstance(event, ContractSigned) and event.total_amount == c.total_amount


def test_the_state_machine_ends_in_completed_or_terminated():
    assert TRANSITIONS[ContractStatus.COMPLETED] == TRANSITIONS[ContractStatus.TERMINATED] == frozenset()
    reachable, frontier = {ContractStatus.DRAFT}, [ContractStatus.DRAFT]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()] - reachable:
            reachable.add(nxt)
            frontier.append(nxt)
    assert reachable == set(ContractStatus)


def test_each_change_bumps_the_version():
    c = contract(discount="8", quantity="2000")
    versions = [c.version]
    c.submit(by="rep-1", now=NOW)
    versions.append(c.version)
    c.review(by="legal-1", decision=ReviewDecision.APPROVE, now=NOW, policy=POLICY)
    versions.append(c.version)
    c.approve(by="rd-1", roles=RD, now=NOW, policy=POLICY)
    versions.append(c.version)
    assert versions == sorted(set(versions))
