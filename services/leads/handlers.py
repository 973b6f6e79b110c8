"""Leads commands and queries. Each opens the unit of work (and commits when it writes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from services.leads.db import AccountRepository, CustomerKeys, LeadRepository, OwnershipConflicts
from services.leads.domain import (
    Account,
    Attribution,
    DecisionTimeframe,
    GradingRules,
    Lead,
    LeadSource,
    MatchKind,
    NeedFit,
    match_keys,
)
from shared.auth import Principal
from shared.domain import NotFound
from shared.pagination import PageParams
from shared.scope import sees_everything
from shared.uow import UnitOfWork


async def get_account(account_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Account:
    async with uow:
        return await AccountRepository(uow).get_visible(account_id, principal)


async def list_accounts(
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    customer_id: str | None = None,
    classification: str | None = None,
) -> tuple[list[Account], str | None]:
    async with uow:
        return await AccountRepository(uow).list(
            principal, page, filters={"customer_id": customer_id, "classification": classification}
        )


# -- leads ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterLead:
    source: LeadSource
    company_name: str | None = None
    contact_name: str | None = None
    phone: str | None = None
    email: str | None = None
    uscc: str | None = None
    region: str | None = None
    industry: str | None = None
    attribution: Attribution = field(default_factory=Attribution)
    budget: Decimal | None = None
    currency: str = "CNY"
    decision_timeframe: DecisionTimeframe = DecisionTimeframe.UNKNOWN
    need_fit: NeedFit = NeedFit.UNKNOWN


async def register_lead(
    cmd: RegisterLead, principal: Principal, uow: UnitOfWork, *, rules: GradingRules, phone_region: str
) -> Lead:
    """Register a lead; the first rep to register the customer (by any match key) owns it.

    Identifiers are normalised first (an invalid one is a 422 before anything is written). The
    lead's match keys are claimed in the customer-key registry; keys someone registered earlier
    link the lead to that earlier lead or account and make their owner this lead's owner. When
    that owner is another rep, the conflict is recorded (``ownership_conflict`` on the lead and
    one ``ownership_conflicts`` row per key), for a sales manager to settle.
    """
    keys = match_keys(
        phone=cmd.phone, email=cmd.email, uscc=cmd.uscc, company_name=cmd.company_name, phone_region=phone_region
    )
    by_kind = {k.kind: k.value for k in keys}
    lead_id, now = uuid.uuid4(), datetime.now(UTC)
    async with uow:
        registry = CustomerKeys(uow)
        claimed = await registry.claim(keys, owner_id=principal.sub, now=now, lead_id=lead_id)
        earlier = await registry.registered([k for k in keys if k not in claimed])
        owner_id, duplicate_of, account_id = principal.sub, None, None
        if earlier:
            first = earlier[0]
            owner_id, duplicate_of = first.owner_id, first.lead_id
            account_id = next((r.account_id for r in earlier if r.account_id is not None), None)
            # The keys this lead added belong to the same customer, hence to its owner.
            await registry.transfer(sorted(claimed), owner_id)
        conflicts = [r for r in earlier if r.owner_id != principal.sub]
        lead = Lead.register(
            rules,
            id=lead_id,
            owner_id=owner_id,
            registered_by=principal.sub,
            source=cmd.source,
            created_at=now,
            company_name=cmd.company_name.strip() if cmd.company_name else None,
            contact_name=cmd.contact_name,
            phone=by_kind.get(MatchKind.PHONE),
            email=by_kind.get(MatchKind.EMAIL),
            uscc=by_kind.get(MatchKind.USCC),
            region=cmd.region,
            industry=cmd.industry,
            attribution=cmd.attribution,
            budget=cmd.budget,
            currency=cmd.currency,
            decision_timeframe=cmd.decision_timeframe,
            need_fit=cmd.need_fit,
            duplicate_of_lead_id=duplicate_of,
            matched_account_id=account_id,
            ownership_conflict=bool(conflicts),
        )
        await LeadRepository(uow).add(lead)
        await OwnershipConflicts(uow).record(lead_id, principal.sub, conflicts, now)
        await uow.commit()
    return lead


async def get_lead(lead_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Lead:
    async with uow:
        return await LeadRepository(uow).get_visible(lead_id, principal)


async def list_leads(
    principal: Principal, uow: UnitOfWork, page: PageParams, **filters: object
) -> tuple[list[Lead], str | None]:
    async with uow:
        return await LeadRepository(uow).list(principal, page, filters=filters)


async def lead_conflicts(lead_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> list:
    async with uow:
        await LeadRepository(uow).get_visible(lead_id, principal)
        return await OwnershipConflicts(uow).of_lead(lead_id)


async def qualify_lead(
    lead_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    rules: GradingRules,
    budget: Decimal | None,
    currency: str,
    timeframe: DecisionTimeframe,
    need_fit: NeedFit,
    if_match: int | None,
) -> Lead:
    """New budget / timeframe / need fit: the grade is recomputed by the current rules."""
    async with uow:
        repository = LeadRepository(uow)
        lead = await repository.get_for_change(lead_id, principal, if_match=if_match)
        if lead.owner_id != principal.sub and not sees_everything(principal):
            raise NotFound(f"no lead {lead_id}")  # the registrant who lost the customer reads only
        lead.qualify(rules, budget=budget, currency=currency, timeframe=timeframe, need_fit=need_fit)
        await repository.save(lead)
        await uow.commit()
    return lead


async def override_owner(
    lead_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    owner_id: str,
    reason: str,
    if_match: int | None,
) -> Lead:
    """A sales manager's decision: ``owner_id`` owns this lead and its customer keys from now on;
    the lead's open ownership conflicts are resolved with ``reason``."""
    now = datetime.now(UTC)
    async with uow:
        repository = LeadRepository(uow)
        lead = await repository.get_for_change(lead_id, principal, if_match=if_match)
        lead.override_owner(owner_id, by=principal.sub, reason=reason)
        keys = match_keys(phone=lead.phone, email=lead.email, uscc=lead.uscc, company_name=lead.company_name)
        await CustomerKeys(uow).transfer(keys, owner_id)
        await OwnershipConflicts(uow).resolve(lead_id, by=principal.sub, resolution=reason, now=now)
        await repository.save(lead)
        await uow.commit()
    return lead
