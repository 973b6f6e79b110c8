"""Business policies that are data shared by several services (one source of truth).

A policy is a versioned JSON file beside this module. Services read it through these loaders
and never import each other: contracts and orders both ask :func:`discount_authority` who may
grant a discount, and every approval records ``policy.version``. Changing a threshold means a
new file version, not a code change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class AuthorityLevel:
    role: str
    max_discount_pct: Decimal | None  # None: no upper limit (the last level)

    def covers(self, discount_pct: Decimal) -> bool:
        return self.max_discount_pct is None or discount_pct <= self.max_discount_pct


@dataclass(frozen=True)
class ContractRouting:
    """Who approves a contract beyond the owner's authority, and what a major contract is."""

    discount_approver_min_role: str
    major_contract_role: str
    major_contract_amounts: tuple[tuple[str, Decimal], ...]  # (ISO 4217 currency, amount)
    price_authority_role: str | None = None  # who approves a line priced below the rep's floor
    price_floors: tuple[tuple[str, str, Decimal], ...] = ()  # (currency, SKU, lowest net unit price)

    def price_floor(self, currency: str, sku: str) -> Decimal | None:
        """The lowest net unit price a rep may agree to for ``sku`` in ``currency`` (None: no floor)."""
        return next((floor for code, s, floor in self.price_floors if code == currency and s == sku), None)

    def major_contract_amount(self, currency: str) -> Decimal | None:
        """The amount above which a contract in ``currency`` is major (None: not listed, always major)."""
        return next((amount for code, amount in self.major_contract_amounts if code == currency), None)


@dataclass(frozen=True)
class DiscountAuthority:
    """Ordered levels, lowest authority first; the last one has no limit."""

    version: str
    levels: tuple[AuthorityLevel, ...]
    contracts: ContractRouting | None = None  # optional section, read by the contracts service

    def level_of(self, role: str) -> AuthorityLevel | None:
        return next((level for level in self.levels if level.role == role), None)

    def required_level(self, discount_pct: Decimal) -> AuthorityLevel:
        """The lowest level whose authority covers ``discount_pct``."""
        return next(level for level in self.levels if level.covers(discount_pct))

    def authority_of(self, roles: frozenset[str] | set[str]) -> AuthorityLevel | None:
        """The highest level among ``roles`` (None when no role has discount authority)."""
        held = [level for level in self.levels if level.role in roles]
        return held[-1] if held else None


def parse_discount_authority(document: dict) -> DiscountAuthority:
    levels = tuple(
        AuthorityLevel(
            role=str(item["role"]),
            max_discount_pct=None if item["max_discount_pct"] is None else Decimal(str(item["max_discount_pct"])),
        )
        for item in document["levels"]
    )
    if not levels or levels[-1].max_discount_pct is not None:
        raise ValueError("the last discount authority level must have no limit")
    limits = [level.max_discount_pct for level in levels[:-1]]
    if any(limit is None for limit in limits) or limits != sorted(limits):  # type: ignore[type-var]
        raise ValueError("discount authority limits must increase level by level")
    return DiscountAuthority(
        version=str(document["version"]), levels=levels, contracts=_parse_contract_routing(document, levels)
    )


def _parse_contract_routing(document: dict, levels: tuple[AuthorityLevel, ...]) -> ContractRouting | None:
    section = document.get("contracts")
    if section is None:
        return None
    roles = {level.role for level in levels}
    routing = ContractRouting(
        discount_approver_min_role=str(section["discount_approver_min_role"]),
        major_contract_role=str(section["major_contract"]["approver_role"]),
        major_contract_amounts=tuple(
            (str(code), Decimal(str(amount))) for code, amount in section["major_contract"]["amounts"].items()
        ),
    )
    if (price := section.get("price_authority")) is not None:
        routing = replace(
            routing,
            price_authority_role=str(price["approver_role"]),
            price_floors=tuple(
                (str(code), str(sku), Decimal(str(floor)))
                for code, floors in price["floors"].items()
                for sku, floor in floors.items()
            ),
        )
        if any(floor <= 0 for _, _, floor in routing.price_floors):
            raise ValueError("price floors must be positive")
    for role in (routing.discount_approver_min_role, routing.major_contract_role, routing.price_authority_role):
        if role is not None and role not in roles:
            raise ValueError(f"contract routing names {role!r}, which has no discount authority level")
    if any(amount <= 0 for _, amount in routing.major_contract_amounts):
        raise ValueError("major-contract amounts must be positive")
    return routing


@cache
def discount_authority() -> DiscountAuthority:
    """The current discount authority policy (read once per process)."""
    return parse_discount_authority(json.loads((_HERE / "discount_authority.json").read_text()))
