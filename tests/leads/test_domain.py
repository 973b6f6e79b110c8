"""Pure domain logic of the leads service: normalisation, match keys, grading, the lead aggregate."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.leads.domain import (
    AssignmentRound,
    DecisionTimeframe,
    Grade,
    GradingInputs,
    GradingRules,
    InvalidIdentifier,
    KeyRegistration,
    Lead,
    LeadSource,
    MatchKey,
    MatchKind,
    NeedFit,
    SalesRep,
    choose_rep,
    match_customer,
    match_keys,
    normalize_company_name,
    normalize_email,
    normalize_phone,
    normalize_uscc,
    rule_key,
)
from shared.domain import DomainError
from shared.events import LeadCreated, LeadGraded, LeadOwnerChanged

RULES_FILE = Path(__file__).resolve().parents[2] / "services" / "leads" / "grading_rules.json"


@pytest.mark.parametrize(
    "raw",
    ["138 0013 8000", "+86 13800138000", "8613800138000", "13800138000", "+86-138-0013-8000", "008613800138000"],
)
def test_chinese_mobile_numbers_in_every_format_give_one_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+8613800138000"


def test_landlines_and_other_regions() -> None:
    assert normalize_phone("010-6552 9988") == "+861065529988"
    assert normalize_phone("+1 650-253-0000") == "+16502530000"
    assert normalize_phone("(650) 253-0000", region="US") == "+16502530000"


@pytest.mark.parametrize("raw", ["12345", "not a phone", "", "138001380001234567"])
def test_invalid_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_phone(raw)


def test_emails_are_lower_cased_and_checked_without_network() -> None:
    assert normalize_email("  Li.Lei@Example.COM ") == "li.lei@example.com"
    assert normalize_email("sales@公司.cn") == "sales@公司.cn"
    for bad in ["li.lei", "li@", "@example.com", "a b@example.com"]:
        with pytest.raises(InvalidIdentifier):
            normalize_email(bad)


def test_unified_social_credit_codes_are_validated() -> None:
    assert normalize_uscc("91110000600037341L") == "91110000600037341L"
    assert normalize_uscc(" 9111 0000 6000 3734 1l") == "91110000600037341L"
    for bad in ["91110000600037341M", "9111000060003734", "ABCDEFGHIJKLMNOPQR"]:
        with pytest.raises(InvalidIdentifier):
            normalize_uscc(bad)


@pytest.mark.parametrize(
    "name",
    [
        "ＡＢＣ科技有限公司",  # full-width letters
        "ＡＢＣ　科技　有限公司",  # full-width letters and ideographic spaces
        "abc科技",
        "ABC 科技股份有限公司",
        "  abc  科技有限责任公司 ",
        "ABC科技公司",
    ],
)
def test_company_names_fold_width_case_spaces_and_legal_forms(name: str) -> None:
    assert normalize_company_name(name) == "abc科技"


@pytest.mark.parametrize(
    "name", ["Acme Co., Ltd.", "ACME Inc.", "acme", "Acme Corporation", "Acme Limited", "Ａｃｍｅ　Ｃｏ．，Ｌｔｄ．"]
)
def test_english_legal_forms_are_removed(name: str) -> None:
    assert normalize_company_name(name) == "acme"


def test_suffix_removal_keeps_words_that_merely_end_like_a_suffix() -> None:
    assert normalize_company_name("Zinc") == "zinc"
    assert normalize_company_name("Costco") == "costco"
    assert normalize_company_name("Costco Inc.") == "costco"
    # Different legal entities stay different.
    assert normalize_company_name("华为技术（北京）有限公司") != normalize_company_name("华为技术有限公司")


@pytest.mark.parametrize("name", ["有限公司", "Co., Ltd.", " ,. ", "　"])
def test_names_with_nothing_but_a_legal_form_are_refused(name: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_company_name(name)


def test_match_keys_are_normalised_deduplicated_and_sorted() -> None:
    keys = match_keys(phone="138 0013 8000", email="A@B.cn", uscc="91110000600037341L", company_name="ＸＹＺ有限公司")
    assert keys == [
        MatchKey(MatchKind.EMAIL, "a@b.cn"),
        MatchKey(MatchKind.NAME, "xyz"),
        MatchKey(MatchKind.PHONE, "+8613800138000"),
        MatchKey(MatchKind.USCC, "91110000600037341L"),
    ]
    assert match_keys(phone="+86 13800138000") == match_keys(phone="8613800138000")
    assert match_keys() == []


# -- grading ----------------------------------------------------------------------------------


def rules() -> GradingRules:
    return GradingRules.load(RULES_FILE)


@pytest.mark.parametrize(
    ("budget", "timeframe", "fit", "grade"),
    [
        ("500000", DecisionTimeframe.WITHIN_1_MONTH, NeedFit.HIGH, Grade.A),
        ("800000", DecisionTimeframe.WITHIN_3_MONTHS, NeedFit.HIGH, Grade.A),
        ("499999.99", DecisionTimeframe.WITHIN_1_MONTH, NeedFit.HIGH, Grade.B),
        ("800000", DecisionTimeframe.WITHIN_6_MONTHS, NeedFit.HIGH, Grade.B),
        ("800000", DecisionTimeframe.WITHIN_1_MONTH, NeedFit.MEDIUM, Grade.B),
        ("100000", DecisionTimeframe.WITHIN_6_MONTHS, NeedFit.MEDIUM, Grade.B),
        ("99999", DecisionTimeframe.WITHIN_1_MONTH, NeedFit.HIGH, Grade.C),
        ("800000", DecisionTimeframe.OVER_6_MONTHS, NeedFit.HIGH, Grade.C),
        ("800000", DecisionTimeframe.WITHIN_1_MONTH, NeedFit.LOW, Grade.C),
        (None, DecisionTimeframe.WITHIN_1_MONTH, NeedFit.HIGH, Grade.C),
    ],
)
def test_the_shipped_rules_grade_a_b_c(budget, timeframe, fit, grade) -> None:
    inputs = GradingInputs(budget=Decimal(budget) if budget else None, timeframe=timeframe, need_fit=fit)
    assert rules().grade(inputs) == grade


def test_rules_are_data_and_versioned() -> None:
    custom = GradingRules.from_dict({"version": 7, "rules": [{"grade": "A", "need_fits": ["medium"]}], "default": "B"})
    assert custom.version == 7
    assert custom.grade(GradingInputs(need_fit=NeedFit.MEDIUM)) == Grade.A
    assert custom.grade(GradingInputs(need_fit=NeedFit.HIGH)) == Grade.B
    assert json.loads(RULES_FILE.read_text())["version"] == rules().version


@pytest.mark.parametrize(
    "data",
    [
        {"rules": []},
        {"version": 0, "rules": []},
        {"version": 1, "rules": [{"grade": "D"}]},
        {"version": 1, "rules": [{"grade": "A", "min_budget": "lots"}]},
        {"version": 1, "rules": [{"grade": "A", "timeframes": ["someday"]}]},
        {"version": 1, "rules": [{"grade": "A", "budget_over": "1"}]},
    ],
)
def test_malformed_rules_are_refused(data) -> None:
    with pytest.raises(ValueError):
        GradingRules.from_dict(data)


# -- the lead aggregate -----------------------------------------------------------------------


def new_lead(**overrides) -> Lead:
    fields = {
        "id": uuid.uuid4(),
        "owner_id": "rep-1",
        "registered_by": "rep-1",
        "source": LeadSource.TRADE_SHOW,
        "created_at": datetime.now(UTC),
        "company_name": "Acme",
        "budget": Decimal("600000"),
        "decision_timeframe": DecisionTimeframe.WITHIN_1_MONTH,
        "need_fit": NeedFit.HIGH,
    }
    return Lead.register(rules(), **{**fields, **overrides})


def test_a_registered_lead_is_graded_and_records_lead_created() -> None:
    lead = new_lead()
    assert (lead.grade, lead.grading_rules_version, lead.version) == (Grade.A, 1, 1)
    [(event, sequence)] = lead.take_events()
    assert isinstance(event, LeadCreated)
    assert (event.lead_id, event.grade, event.source, sequence) == (lead.id, "A", "trade_show", 1)


def test_changed_inputs_regrade_and_record_only_real_changes() -> None:
    lead = new_lead()
    lead.take_events()
    lead.qualify(
        rules(),
        budget=Decimal("600000"),
        currency="CNY",
        timeframe=DecisionTimeframe.WITHIN_3_MONTHS,
        need_fit=NeedFit.HIGH,
    )
    assert lead.grade == Grade.A and lead.take_events() == []
    lead.qualify(
        rules(), budget=Decimal("1000"), currency="CNY", timeframe=DecisionTimeframe.UNKNOWN, need_fit=NeedFit.LOW
    )
    [(event, _)] = lead.take_events()
    assert isinstance(event, LeadGraded)
    assert (event.grade, event.previous_grade, event.rules_version) == ("C", "A", 1)


def test_owner_override_needs_a_reason_and_another_owner() -> None:
    lead = new_lead(owner_id="rep-1", registered_by="rep-2", ownership_conflict=True)
    lead.take_events()
    with pytest.raises(DomainError):
        lead.override_owner("rep-2", by="mgr", reason="  ")
    with pytest.raises(DomainError):
        lead.override_owner("rep-1", by="mgr", reason="same")
    lead.override_owner("rep-2", by="mgr", reason="rep-2 met them first at the fair")
    assert (lead.owner_id, lead.ownership_conflict) == ("rep-2", False)
    [(event, _)] = lead.take_events()
    assert isinstance(event, LeadOwnerChanged)
    assert (event.previous_owner_id, event.changed_by) == ("rep-1", "mgr")


def a_rep(rep_id: str, capacity: int, region: str | None = "east") -> SalesRep:
    return SalesRep(id=rep_id, name=rep_id, region=region, capacity=capacity, created_at=datetime.now(UTC))


def test_an_assignment_round_counts_each_choice_towards_the_next() -> None:
    """Many choices from one reading give what one choice per fresh reading gives (an import's chunk)."""
    reps = [a_rep("r1", 2), a_rep("r2", 4), a_rep("r3", 10, region="west"), a_rep("r0", 3, region=None)]
    leads = ["east", "east", "west", None, "east", "east", "east", "west", "east", "east", "east", "east", "east"]
    assignment = AssignmentRound(reps, {"r2": 1}, {})
    assignment.count("r1")  # a repeat of r1's customer: r1's load, no choice
    bulk = [getattr(assignment.choose(region, None), "id", None) for region in leads]

    loads, cursors, one_by_one = {"r1": 1, "r2": 1}, {}, []
    for region in leads:
        chosen = choose_rep(reps, loads, region=region, industry=None, cursor=cursors.get(rule_key(region, None)))
        one_by_one.append(chosen.id if chosen else None)
        if chosen:
            loads[chosen.id] = loads.get(chosen.id, 0) + 1
            cursors[rule_key(region, None)] = chosen.id
    assert bulk == one_by_one
    assert bulk[-2:] == [None, None]  # every east rep full: the pool
    assert assignment.moved == cursors and assignment.loads == {"r0": 3, "r1": 2, "r2": 4, "r3": 3}


def test_the_first_registration_of_a_customer_decides_its_owner_and_duplicate() -> None:
    lead, earlier_lead, account = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pool_key = KeyRegistration("email", "a@b.cn", None, earlier_lead, None, t0)
    owned_key = KeyRegistration("phone", "+8613800138000", "rep-2", lead, account, t0.replace(day=2))
    match = match_customer([pool_key, owned_key], claimant="rep-1")
    assert (match.duplicate_of_lead_id, match.matched_account_id, match.owner_id) == (earlier_lead, account, "rep-2")
    assert match.conflicts == (owned_key,)
    assert match_customer([pool_key, owned_key], claimant=None).conflicts == ()  # by the rules: no conflict
    assert match_customer([], claimant="rep-1") == match_customer([], claimant=None)
