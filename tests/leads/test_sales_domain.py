"""Pure rules of the sales side: target periods and decomposition, price rules, quote amounts,
the opportunity stage machine."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.leads.domain.opportunity import Opportunity, Stage
from services.leads.domain.quote import LineInput, PriceRules, Quote
from services.leads.domain.target import Period, split
from shared.domain import DomainError, InvalidTransition
from shared.policies import discount_authority

NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "kind", "starts", "ends"),
    [
        ("2026-02", "month", date(2026, 2, 1), date(2026, 3, 1)),
        ("2026-12", "month", date(2026, 12, 1), date(2027, 1, 1)),
        ("2026-Q1", "quarter", date(2026, 1, 1), date(2026, 4, 1)),
        ("2026-Q4", "quarter", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026", "year", date(2026, 1, 1), date(2027, 1, 1)),
    ],
)
def test_periods(name: str, kind: str, starts: date, ends: date) -> None:
    period = Period.parse(name)
    assert (period.kind.value, period.starts_on, period.ends_on) == (kind, starts, ends)


def test_period_bounds_are_in_the_business_time_zone() -> None:
    start, end = Period.parse("2026-Q4").bounds(ZoneInfo("Asia/Shanghai"))
    assert start.astimezone(UTC) == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", ["2026-00", "2026-13", "2026-Q0", "1999", "2026-1", "x"])
def test_bad_periods(name: str) -> None:
    with pytest.raises(DomainError):
        Period.parse(name)


@pytest.mark.parametrize(
    ("amount", "weights"),
    [("100000.00", [1, 1, 1]), ("0.05", [1, 1, 1, 1, 1, 1, 1]), ("999999.99", [3, 7, 11, 13]), ("1.00", [1, 2])],
)
def test_split_adds_up_to_the_cent(amount: str, weights: list[int]) -> None:
    shares = split(Decimal(amount), [Decimal(w) for w in weights])
    assert sum(shares) == Decimal(amount)
    assert all(s == s.quantize(Decimal("0.01")) for s in shares)
    ideal = [Decimal(amount) * w / sum(weights) for w in weights]
    assert all(abs(s - i) < Decimal("0.01") for s, i in zip(shares, ideal, strict=True))


def test_price_rules_pick_the_highest_tier_reached() -> None:
    rules = PriceRules.from_dict(
        {
            "version": 3,
            "default": [{"min_quantity": "10", "discount_pct": "3"}, {"min_quantity": "50", "discount_pct": "5"}],
            "by_sku": {"X": []},
        }
    )
    assert [rules.volume_discount("A", Decimal(q)) for q in ("9", "10", "49.9", "50", "1000")] == [
        Decimal(0),
        Decimal(3),
        Decimal(3),
        Decimal(5),
        Decimal(5),
    ]
    assert rules.volume_discount("X", Decimal(1000)) == 0


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"version": 0},
        {"version": 1, "default": [{"min_quantity": "0", "discount_pct": "1"}]},
        {"version": 1, "default": [{"min_quantity": "1", "discount_pct": "100"}]},
        {"version": 1, "default": "x"},
    ],
)
def test_malformed_price_rules_are_refused(document: dict) -> None:
    with pytest.raises(ValueError):
        PriceRules.from_dict(document)


def quote(extra: str, roles: set[str], lines: list[LineInput]) -> Quote:
    return Quote.draft(
        lines,
        rules=PriceRules(version=1),
        policy=discount_authority(),
        author_roles=frozenset(roles),
        extra_discount_pct=Decimal(extra),
        today=NOW.date(),
        id=uuid.uuid4(),
        number="QT-2026-000001",
        opportunity_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        owner_id="rep-1",
        currency="CNY",
        valid_until=date(2026, 12, 31),
        created_by="rep-1",
        created_at=NOW,
    )


def test_quote_amounts_round_half_up_and_add_up() -> None:
    lines = [LineInput(sku=f"S{i}", name="n", quantity=Decimal(3), unit_price=Decimal("0.35")) for i in range(3)]
    q = quote("3.33", {"sales_manager"}, lines)
    assert q.subtotal_amount == Decimal("3.15")
    assert q.total_amount == Decimal("3.05")  # 3.15 * 0.9667 = 3.045105 -> 3.05
    assert q.total_amount + q.discount_amount == q.subtotal_amount


def test_the_extra_discount_needs_authority() -> None:
    line = [LineInput(sku="S", name="n", quantity=Decimal(1), unit_price=Decimal(100))]
    assert quote("5", {"sales_rep"}, line).total_amount == Decimal("95.00")
    with pytest.raises(DomainError, match="authority"):
        quote("5.5", {"sales_rep"}, line)
    with pytest.raises(DomainError, match="authority"):
        quote("1", {"finance"}, line)  # no discount authority at all
    assert quote("50", {"marketing_director"}, line).total_amount == Decimal("50.00")


def test_the_stage_machine() -> None:
    o = Opportunity(
        id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        name="x",
        owner_id="r",
        amount=Decimal(100),
        currency="CNY",
        created_at=NOW,
    )
    with pytest.raises(InvalidTransition):
        o.move_to(Stage.PROPOSAL, by="r", now=NOW)
    o.move_to(Stage.NEEDS_ANALYSIS, by="r", now=NOW)
    assert (o.probability, o.weighted_value) == (Decimal(25), Decimal("25.00"))
    with pytest.raises(InvalidTransition):
        o.move_to(Stage.WON, by="r", now=NOW)
    with pytest.raises(InvalidTransition):
        o.win(None, customer_id="c", customer_name="C", contact=None, by="r", now=NOW)
    o.lose("budget cut", by="r", now=NOW)
    with pytest.raises(InvalidTransition):
        o.move_to(Stage.NEEDS_ANALYSIS, by="r", now=NOW)
    assert [type(e).__name__ for e, _ in o.take_events()] == [
        "OpportunityStageChanged",
        "OpportunityStageChanged",
        "OpportunityLost",
    ]
