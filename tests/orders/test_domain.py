"""Pure domain rules of the order: approval paths, credit hold, prepayment, partial delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.orders.domain import (
    Amendment,
    CreditFigures,
    Level,
    NotAnApprover,
    Order,
    OrderLine,
    OrderStatus,
    Overpayment,
    StepStatus,
)
from shared.domain import DomainError, InvalidTransition
from shared.events import OrderApproved, OrderCancelled, OrderChanged, OrderDelivered, OrderRejected
from shared.policies import discount_authority, parse_discount_authority

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
POLICY = discount_authority()
MANAGER = frozenset({"sales_manager"})
DIRECTOR = frozenset({"regional_director"})
MARKETING = frozenset({"marketing_director"})
FINANCE = frozenset({"finance"})


def credit(limit: str = "1000000", outstanding: str = "0", amount: str = "1000") -> CreditFigures:
    return CreditFigures(Decimal(limit), Decimal(outstanding), Decimal(amount), "customer")


def order(discount_pct: str = "0", terms: str = "net 30", quantity: str = "2") -> Order:
    qty, price = Decimal(quantity), Decimal("500.00")
    amount = (qty * price * (100 - Decimal(discount_pct)) / 100).quantize(Decimal("0.01"))
    line = OrderLine(
        line_no=1, sku="P-1", description="Pump", quantity=qty, unit_price=price, amount=amount, warranty_months=12
    )
    return Order.enter(
        policy=POLICY,
        id=uuid.uuid4(),
        number="SO-2026-000001",
        customer_id="c-1",
        customer_name="C1",
        owner_id="rep-1",
        currency="CNY",
        lines=[line],
        total_amount=amount,
        payment_terms=terms,
        created_at=NOW,
    )


def events(o: Order) -> list:
    return [e for e, _ in o.take_events()]


def test_policy_is_shared_data_with_a_version() -> None:
    assert POLICY.version
    assert [(lv.role, lv.max_discount_pct) for lv in POLICY.levels] == [
        ("sales_rep", Decimal(5)),
        ("sales_manager", Decimal(10)),
        ("regional_director", Decimal(20)),
        ("marketing_director", None),
    ]
    with pytest.raises(ValueError):
        parse_discount_authority({"version": "x", "levels": [{"role": "a", "max_discount_pct": "5"}]})


def test_no_discount_skips_the_director_with_the_rule_and_finance_approves() -> None:
    o = order()
    assert o.status == OrderStatus.PENDING_APPROVAL and o.pending_role == "sales_manager"
    skipped = o._step(Level.DISCOUNT)
    assert skipped.status == StepStatus.SKIPPED and "within the owner's authority" in skipped.rule
    assert skipped.policy_version == POLICY.version
    o.approve(by="mgr", roles=MANAGER, now=NOW, policy=POLICY, credit=credit())
    assert o.pending_role == "finance"
    step = o.approve(by="fin", roles=FINANCE, now=NOW, policy=POLICY, credit=credit())
    assert step.decided_by == "fin" and step.decided_role == "finance" and step.figures["exposure"] == "1000"
    assert o.status == OrderStatus.RELEASED and o.pending_role is None
    assert any(isinstance(e, OrderApproved) for e in events(o))


def test_discount_beyond_the_managers_authority_needs_the_regional_director() -> None:
    o = order(discount_pct="15")
    assert o.discount_pct == Decimal("15.00")
    o.approve(by="mgr", roles=MANAGER, now=NOW, policy=POLICY, credit=credit())
    assert o.pending_role == "regional_director"
    with pytest.raises(NotAnApprover):
        o.approve(by="fin", roles=FINANCE, now=NOW, policy=POLICY, credit=credit())
    step = o.approve(by="dir", roles=DIRECTOR, now=NOW, policy=POLICY, credit=credit())
    assert step.figures["discount_pct"] == "15.00" and step.figures["approver_authority_pct"] == "20"
    assert o.pending_role == "finance"


def test_within_the_managers_authority_is_covered_by_the_manager_level() -> None:
    o = order(discount_pct="8")
    assert "sales manager's authority" in o._step(Level.DISCOUNT).rule


def test_above_twenty_percent_needs_the_marketing_director_and_a_higher_authority_may_decide() -> None:
    o = order(discount_pct="25")
    o.approve(by="mgr", roles=MANAGER, now=NOW, policy=POLICY, credit=credit())
    assert o.pending_role == "marketing_director"
    with pytest.raises(NotAnApprover):
        o.approve(by="dir", roles=DIRECTOR, now=NOW, policy=POLICY, credit=credit())
    o.approve(by="md", roles=MARKETING, now=NOW, policy=POLICY, credit=credit())
    assert o.pending_role == "finance"


def test_credit_hold_shows_the_figures_and_a_higher_limit_releases_it() -> None:
    o = order()
    o.approve(by="mgr", roles=MANAGER, now=NOW, policy=POLICY, credit=credit(limit="5000", outstanding="4500"))
    assert o.status == OrderStatus.CREDIT_HOLD and o.credit_hold and o.pending_role is None
    held = o._step(Level.FINANCE)
    assert held.figures == {
        "credit_limit": "5000",
        "outstanding_balance": "4500",
        "order_amount": "1000",
        "exposure": "5500",
        "limit_source": "customer",
    }
    with pytest.raises(InvalidTransition):
        o.approve(by="fin", roles=FINANCE, now=NOW, policy=POLICY, credit=credit(limit="5000", outstanding="4500"))
    assert not o.recheck_credit(credit(limit="5400", outstanding="4500"), NOW)
    assert o.recheck_credit(credit(limit="6000", outstanding="4500"), NOW)
    assert o.status == OrderStatus.PENDING_APPROVAL and o.pending_role == "finance"


def test_rejection_returns_to_the_owner_and_an_amendment_restarts_approval() -> None:
    o = order()
    with pytest.raises(DomainError):
        o.reject(by="mgr", roles=MANAGER, reason=" ", now=NOW, policy=POLICY)
    o.reject(by="mgr", roles=MANAGER, reason="wrong address", now=NOW, policy=POLICY)
    assert o.status == OrderStatus.RETURNED
    rejected = [e for e in events(o) if isinstance(e, OrderRejected)]
    assert rejected[0].reason == "wrong address" and rejected[0].role == "sales_manager"
    assert o.amend(Amendment(delivery_address="2 Nanjing Rd"), by="rep-1", now=NOW, policy=POLICY) == "amended"
    assert o.status == OrderStatus.PENDING_APPROVAL and o.approval_round == 2 and o.pending_role == "sales_manager"
    assert [e.kind for e in events(o) if isinstance(e, OrderChanged)] == ["amended"]


def test_nobody_approves_their_own_order() -> None:
    o = order()
    with pytest.raises(NotAnApprover):
        o.approve(by="rep-1", roles=frozenset({"admin"}), now=NOW, policy=POLICY, credit=credit())


def approved(o: Order) -> Order:
    o.approve(by="mgr", roles=MANAGER, now=NOW, policy=POLICY, credit=credit())
    o.approve(by="fin", roles=FINANCE, now=NOW, policy=POLICY, credit=credit())
    events(o)
    return o


def test_change_after_approval_is_a_change_request_applied_only_when_approved() -> None:
    o = approved(order())
    new_line = OrderLine(
        line_no=1, sku="P-1", description="Pump", quantity=Decimal(3), unit_price=Decimal(500), amount=Decimal(1500)
    )
    assert o.amend(Amendment(lines=(new_line,)), by="rep-1", now=NOW, policy=POLICY) == "change_requested"
    assert o.total_amount == Decimal("1000.00") and o.pending_role == "sales_manager"
    with pytest.raises(InvalidTransition):
        o.release_shipment(uuid.uuid4(), [(1, Decimal(1))], now=NOW)
    o.approve(by="mgr", roles=MANAGER, now=NOW, policy=POLICY, credit=credit(amount="1500"))
    o.approve(by="fin", roles=FINANCE, now=NOW, policy=POLICY, credit=credit(amount="1500"))
    assert o.total_amount == Decimal(1500) and o.pending_change is None and o.status == OrderStatus.RELEASED
    kinds = [e.kind for e in events(o) if isinstance(e, OrderChanged)]
    assert kinds == ["change_requested", "change_applied"]


def test_prepayment_holds_shipping_until_paid() -> None:
    o = approved(order(terms="30% prepayment, net 30"))
    assert o.status == OrderStatus.AWAITING_PREPAYMENT and o.prepayment_required == Decimal("300.00")
    with pytest.raises(InvalidTransition, match="prepayment"):
        o.release_shipment(uuid.uuid4(), [(1, Decimal(1))], now=NOW)
    o.receive_payment(uuid.uuid4(), Decimal("299.99"), now=NOW)
    assert o.status == OrderStatus.AWAITING_PREPAYMENT
    o.receive_payment(uuid.uuid4(), Decimal("0.01"), now=NOW)
    assert o.status == OrderStatus.RELEASED


def test_a_payment_above_the_outstanding_amount_is_refused_and_changes_nothing() -> None:
    o, first = approved(order()), uuid.uuid4()  # 1000.00
    o.receive_payment(first, Decimal("600.00"), now=NOW)
    version = o.version
    with pytest.raises(Overpayment, match=r"400\.00 CNY outstanding") as refused:
        o.receive_payment(uuid.uuid4(), Decimal("400.01"), now=NOW)
    assert refused.value.extensions == {"outstanding_amount": "400.00", "currency": "CNY"}
    assert refused.value.status == 422
    assert (o.paid_amount, len(o.payments), o.version) == (Decimal("600.00"), 1, version)
    assert o.receive_payment(first, Decimal("600.00"), now=NOW) is False  # a replay is not an overpayment
    o.receive_payment(uuid.uuid4(), Decimal("400.00"), now=NOW)
    assert o.outstanding_amount == 0
    with pytest.raises(Overpayment, match=r" 0\.00 CNY outstanding"):
        o.receive_payment(uuid.uuid4(), Decimal("0.01"), now=NOW)
    assert [e.paid_amount for e in events(o)] == [Decimal("600.00"), Decimal("1000.00")]


def test_partial_deliveries_end_in_one_order_delivered_with_every_serial() -> None:
    o = approved(order(quantity="3"))
    first = o.release_shipment(uuid.uuid4(), [(1, Decimal(2))], now=NOW)
    with pytest.raises(DomainError):
        o.release_shipment(uuid.uuid4(), [(1, Decimal(2))], now=NOW)  # only 1 left
    o.pick_shipment(first.id, NOW)
    o.ship_shipment(first.id, now=NOW, carrier="SF", tracking_number="T1", serial_numbers={1: ("A", "B")})
    o.deliver_shipment(first.id, NOW)
    assert o.status == OrderStatus.PARTIALLY_DELIVERED
    assert not [e for e in events(o) if isinstance(e, OrderDelivered)]
    second = o.release_shipment(uuid.uuid4(), [(1, Decimal(1))], now=NOW)
    with pytest.raises(InvalidTransition):
        o.deliver_shipment(second.id, NOW)  # not shipped yet
    o.ship_shipment(second.id, now=NOW, serial_numbers={1: ("C",)})
    o.deliver_shipment(second.id, NOW)
    [delivered] = [e for e in events(o) if isinstance(e, OrderDelivered)]
    assert delivered.items[0].serial_numbers == ("A", "B", "C") and delivered.items[0].warranty_months == 12
    assert o.status == OrderStatus.DELIVERED
    o.receive_payment(uuid.uuid4(), Decimal(1500), now=NOW)
    assert o.status == OrderStatus.COMPLETED


def test_cancellation_before_shipping_only() -> None:
    o = approved(order())
    s = o.release_shipment(uuid.uuid4(), [(1, Decimal(2))], now=NOW)
    o.ship_shipment(s.id, now=NOW)
    with pytest.raises(InvalidTransition):
        o.cancel(by="rep-1", reason="customer changed mind", now=NOW)
    other = order()
    other.cancel(by="rep-1", reason="customer changed mind", now=NOW)
    assert other.status == OrderStatus.CANCELLED and other.pending_role is None


def test_a_terminated_contract_cancels_its_order_unless_goods_shipped() -> None:
    released = approved(order())
    released.release_shipment(uuid.uuid4(), [(1, Decimal(1))], now=NOW)  # released, not shipped yet
    assert released.contract_terminated("HT-2026-000001", "customer insolvent", now=NOW) is True
    [cancelled] = events(released)
    assert isinstance(cancelled, OrderCancelled) and cancelled.cancelled_by == "system"
    assert cancelled.reason == "contract HT-2026-000001 terminated: customer insolvent"
    assert released.contract_terminated("HT-2026-000001", "customer insolvent", now=NOW) is False  # once
    assert not events(released)

    shipped = approved(order())
    shipment = shipped.release_shipment(uuid.uuid4(), [(1, Decimal(1))], now=NOW)
    shipped.ship_shipment(shipment.id, now=NOW)
    events(shipped)
    assert shipped.contract_terminated("HT-2026-000002", "customer insolvent", now=NOW) is False
    assert shipped.status == OrderStatus.RELEASED and not events(shipped)


def pump(quantity: str, *, price: str = "500.00", line_no: int = 1, sku: str = "P-1") -> OrderLine:
    qty, unit = Decimal(quantity), Decimal(price)
    return OrderLine(line_no=line_no, sku=sku, description="Pump", quantity=qty, unit_price=unit, amount=qty * unit)


def approve_change(o: Order, amount: str) -> None:
    o.approve(by="mgr", roles=MANAGER, now=NOW, policy=POLICY, credit=credit(amount=amount))
    o.approve(by="fin", roles=FINANCE, now=NOW, policy=POLICY, credit=credit(amount=amount))


def test_after_a_partial_shipment_only_the_unshipped_rest_may_change() -> None:
    o = approved(order(quantity="4"))  # 4 x 500
    first = o.release_shipment(uuid.uuid4(), [(1, Decimal(2))], now=NOW)
    o.ship_shipment(first.id, now=NOW, serial_numbers={1: ("A", "B")})
    o.deliver_shipment(first.id, NOW)
    assert o.status == OrderStatus.PARTIALLY_DELIVERED
    o.issue_invoice("INV-1", Decimal(1000), issued_at=NOW, due_date="2026-12-25")
    events(o)

    refused = [
        (Amendment(lines=(pump("1"),)), "cannot go below the 2 already on shipments"),
        (Amendment(lines=(pump("4", price="450.00"),)), "its product, price and discount stay"),
        (Amendment(lines=(pump("4", sku="P-2"),)), "its product, price and discount stay"),
        (Amendment(lines=(pump("1", sku="X", line_no=1),)), "line 1"),
    ]
    for amendment, message in refused:
        with pytest.raises(InvalidTransition, match=message):
            o.amend(amendment, by="rep-1", now=NOW, policy=POLICY)
    assert o.pending_change is None and not o.take_events() and o.approval_round == 1

    # Fewer of what is not shipped yet, one more product, a new address for the rest: a change request.
    change = Amendment(lines=(pump("3"), pump("1", line_no=2, sku="V-1")), delivery_address="2 Bund Rd, Shanghai")
    assert o.amend(change, by="rep-1", now=NOW, policy=POLICY) == "change_requested"
    assert o.total_amount == Decimal("2000.00") and o.pending_role == "sales_manager"
    approve_change(o, "2000")
    assert o.total_amount == Decimal(2000) and [line.quantity for line in o.lines] == [3, 1]
    assert o.delivery_address == "2 Bund Rd, Shanghai" and o.status == OrderStatus.PARTIALLY_DELIVERED
    assert o.remaining_quantities() == {1: Decimal(1), 2: Decimal(1)}
    kinds = [e.kind for e in events(o) if isinstance(e, OrderChanged)]
    assert kinds == ["change_requested", "change_applied"]

    # Below what is invoiced, or a new address once everything has shipped: refused, named.
    o.issue_invoice("INV-2", Decimal(500), issued_at=NOW, due_date="2027-01-25")
    with pytest.raises(InvalidTransition, match="below the 1500 already invoiced"):
        o.amend(Amendment(lines=(pump("2"),)), by="rep-1", now=NOW, policy=POLICY)
    rest = o.release_shipment(uuid.uuid4(), [(1, Decimal(1)), (2, Decimal(1))], now=NOW)
    o.ship_shipment(rest.id, now=NOW)
    with pytest.raises(InvalidTransition, match="everything has shipped"):
        o.amend(Amendment(delivery_address="elsewhere"), by="rep-1", now=NOW, policy=POLICY)
    o.deliver_shipment(rest.id, NOW)
    assert o.status == OrderStatus.DELIVERED
    with pytest.raises(InvalidTransition, match="a delivered order cannot be changed"):
        o.amend(Amendment(requested_delivery_date="2027-01-10"), by="rep-1", now=NOW, policy=POLICY)


def test_a_change_that_drops_the_undelivered_rest_delivers_the_order_once() -> None:
    o = approved(order(quantity="3"))
    first = o.release_shipment(uuid.uuid4(), [(1, Decimal(2))], now=NOW)
    o.ship_shipment(first.id, now=NOW, serial_numbers={1: ("A", "B")})
    o.deliver_shipment(first.id, NOW)
    events(o)
    o.amend(Amendment(lines=(pump("2"),), reason="the customer needs only two"), by="rep-1", now=NOW, policy=POLICY)
    approve_change(o, "1000")
    assert o.status == OrderStatus.DELIVERED and o.total_amount == Decimal(1000)
    recorded = events(o)
    [delivered] = [e for e in recorded if isinstance(e, OrderDelivered)]
    assert delivered.items[0].quantity == 2 and delivered.items[0].serial_numbers == ("A", "B")
    assert [type(e).__name__ for e in recorded] == ["OrderChanged", "OrderChanged", "OrderApproved", "OrderDelivered"]


def test_delivering_everything_ends_a_waiting_change_request() -> None:
    o = approved(order(quantity="2"))
    shipment = o.release_shipment(uuid.uuid4(), [(1, Decimal(2))], now=NOW)
    o.ship_shipment(shipment.id, now=NOW)
    o.amend(Amendment(requested_delivery_date="2027-01-10"), by="rep-1", now=NOW, policy=POLICY)
    events(o)
    o.deliver_shipment(shipment.id, NOW)
    assert o.status == OrderStatus.DELIVERED and o.pending_change is None and o.pending_role is None
    recorded = events(o)
    [discarded] = [e for e in recorded if isinstance(e, OrderChanged)]
    assert discarded.kind == "change_discarded" and "delivered" in (discarded.reason or "")
    assert len([e for e in recorded if isinstance(e, OrderDelivered)]) == 1
    with pytest.raises(InvalidTransition):
        o.approve(by="mgr", roles=MANAGER, now=NOW, policy=POLICY, credit=credit())
