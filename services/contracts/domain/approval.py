"""Approval routing as data: which approval steps a contract revision needs.

The rules live in ``shared/policies/discount_authority.json`` (versioned, shared with orders):
a discount beyond the owner's authority needs the level whose authority covers it, but at least
the policy's ``discount_approver_min_role`` (the regional director); a total above the
major-contract amount of the contract's currency needs ``major_contract.approver_role`` (the
marketing director); a line whose net unit price is below the rep's authority price for its
SKU (``price_authority.floors``) needs ``price_authority.approver_role`` (the marketing
director). One step per role, lowest authority first, decided in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.policies import AuthorityLevel, DiscountAuthority


class StepStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"  # another step of the round was rejected


@dataclass(frozen=True)
class ApprovalStep:
    revision: int
    role: str
    rules: tuple[str, ...]  # "discount", "major_contract", "price_floor"
    threshold: str  # the thresholds that made this step necessary, in words
    policy_version: str
    status: StepStatus = StepStatus.PENDING
    decided_by: str | None = None
    decided_role: str | None = None
    authority_pct: Decimal | None = None  # the decider's discount authority (None: no limit)
    decided_policy_version: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


def _level_index(policy: DiscountAuthority, role: str) -> int:
    level = policy.level_of(role)
    if level is None:
        raise ValueError(f"the policy has no level for {role!r}")
    return policy.levels.index(level)


def route(
    policy: DiscountAuthority,
    *,
    revision: int,
    owner_role: str,
    discount_pct: Decimal,
    total: Decimal,
    currency: str,
    net_prices: tuple[tuple[str, Decimal], ...] = (),
) -> list[ApprovalStep]:
    """The approval steps a revision with these figures needs (empty: within the owner's authority).
    ``net_prices`` are (SKU, unit price after line and header discounts) per line."""
    routing = policy.contracts
    if routing is None:
        raise ValueError(f"discount authority policy {policy.version} has no contracts section")
    needed: dict[str, tuple[list[str], list[str]]] = {}  # role -> (rules, thresholds)
    owner: AuthorityLevel = policy.level_of(owner_role) or policy.levels[0]
    if not owner.covers(discount_pct):
        covering = policy.required_level(discount_pct)
        role = max(covering.role, routing.discount_approver_min_role, key=lambda r: _level_index(policy, r))
        rules, thresholds = needed.setdefault(role, ([], []))
        rules.append("discount")
        thresholds.append(f"discount {discount_pct}% exceeds the {owner.role} authority of {owner.max_discount_pct}%")
    major = routing.major_contract_amount(currency)
    if major is None or total > major:
        rules, thresholds = needed.setdefault(routing.major_contract_role, ([], []))
        rules.append("major_contract")
        thresholds.append(
            f"total {total} {currency} exceeds the major-contract amount of {major} {currency}"
            if major is not None
            else f"no major-contract amount for {currency}: every {currency} contract is major"
        )
    below = [
        (sku, price, floor)
        for sku, price in net_prices
        if (floor := routing.price_floor(currency, sku)) is not None and price < floor
    ]
    if below and routing.price_authority_role is not None:
        rules, thresholds = needed.setdefault(routing.price_authority_role, ([], []))
        rules.append("price_floor")
        thresholds.extend(
            f"{sku} at {price} {currency} is below the sales_rep authority price of {floor} {currency}"
            for sku, price, floor in below
        )
    return [
        ApprovalStep(
            revision=revision,
            role=role,
            rules=tuple(rules),
            threshold="; ".join(thresholds),
            policy_version=policy.version,
        )
        for role, (rules, thresholds) in sorted(needed.items(), key=lambda item: _level_index(policy, item[0]))
    ]


def deciding_level(policy: DiscountAuthority, step: ApprovalStep, roles: frozenset[str]) -> AuthorityLevel | None:
    """The caller's level that may decide ``step``: the step's role, or a higher authority (None: may not)."""
    needed = _level_index(policy, step.role)
    held = [level for level in policy.levels if level.role in roles and policy.levels.index(level) >= needed]
    return held[0] if held else None
