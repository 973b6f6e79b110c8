"""Leads commands and queries. Each opens the unit of work (and commits when it writes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from services.leads.db import (
    AccountRepository,
    Contacts,
    CustomerKeys,
    LeadConversions,
    LeadRepository,
    OpportunityRepository,
    OwnershipConflicts,
    QuoteRepository,
)
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
from services.leads.domain.account import AccountClassification, AccountTier
from services.leads.domain.conversion import Contact, ConversionRequest, convert
from services.leads.domain.matching import normalize_email, normalize_phone
from services.leads.domain.opportunity import Opportunity, Stage
from services.leads.domain.quote import LineInput, PriceRules, Quote
from shared.auth import Principal
from shared.domain import InvalidTransition, NotFound, PreconditionFailed
from shared.pagination import PageParams
from shared.policies import discount_authority
from shared.scope import sees_everything
from shared.timers import cancel_timer, schedule_timer
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


# -- conversion, accounts, contacts ---------------------------------------------------------

FOLLOW_UP_TIMER = "account.follow_up_due"


@dataclass(frozen=True, slots=True)
class ConversionResult:
    lead: Lead
    account: Account
    contact: Contact
    opportunity: Opportunity
    created: bool  # False: the lead had been converted already (a double submission)


async def convert_lead(
    lead_id: uuid.UUID,
    request: ConversionRequest,
    principal: Principal,
    uow: UnitOfWork,
    *,
    if_match: int | None,
) -> ConversionResult:
    """One transaction: account (unless the lead matched one), contact, opportunity, ``lead.converted``.

    The lead row is locked first, so of two concurrent conversions the second waits and then
    finds the first one's ``lead_conversions`` row, and answers with it.
    """
    now = datetime.now(UTC)
    async with uow:
        leads = LeadRepository(uow)
        lead = await leads.get_for_change(lead_id, principal)
        if lead.owner_id != principal.sub and not sees_everything(principal):
            raise NotFound(f"no lead {lead_id}")  # the registrant who lost the customer reads only
        done = await LeadConversions(uow).of_lead(lead_id)
        if done is not None:
            return await _conversion_of(uow, lead, done)
        if if_match is not None and if_match != lead.version:
            raise PreconditionFailed("the lead has changed since you read it")
        accounts = AccountRepository(uow)
        existing = await accounts.get(lead.matched_account_id, None) if lead.matched_account_id else None
        conversion = convert(
            lead,
            request,
            existing_account=existing,
            by=principal.sub,
            team=principal.team,
            region=principal.region,
            now=now,
        )
        account = conversion.account
        if conversion.account_is_new:
            await accounts.add(account)
            registry = CustomerKeys(uow)
            for key in match_keys(phone=lead.phone, email=lead.email, uscc=lead.uscc, company_name=lead.company_name):
                await registry.link_account(key, account_id=account.id, owner_id=account.owner_id, now=now)
            await _schedule_follow_up(uow, account)
        await Contacts(uow).add(conversion.contact)
        await OpportunityRepository(uow).add(conversion.opportunity)
        await LeadConversions(uow).record(
            lead_id,
            account_id=account.id,
            contact_id=conversion.contact.id,
            opportunity_id=conversion.opportunity.id,
            by=principal.sub,
            now=now,
        )
        await leads.save(lead)
        await uow.commit()
    return ConversionResult(lead, account, conversion.contact, conversion.opportunity, created=True)


async def _conversion_of(uow: UnitOfWork, lead: Lead, row) -> ConversionResult:
    account = await AccountRepository(uow).get(row.account_id, None)
    contact = await Contacts(uow).get(row.contact_id)
    opportunity = await OpportunityRepository(uow).get(row.opportunity_id, None)
    if account is None or contact is None or opportunity is None:
        raise RuntimeError(f"lead {lead.id}'s conversion lost its account, contact or opportunity")
    return ConversionResult(lead, account, contact, opportunity, created=False)


async def _schedule_follow_up(uow: UnitOfWork, account: Account) -> None:
    if account.next_follow_up_at is not None:
        await schedule_timer(
            uow,
            FOLLOW_UP_TIMER,
            key=_follow_up_key(account),
            due_at=account.next_follow_up_at,
            payload={"account_id": str(account.id), "due_at": account.next_follow_up_at.isoformat()},
        )


def _follow_up_key(account: Account) -> str:
    # One timer per reminder: a fired timer row cannot be re-armed from its own handler.
    assert account.next_follow_up_at is not None
    return f"{account.id}@{account.next_follow_up_at.isoformat()}"


async def update_account(
    account_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    classification: AccountClassification | None,
    tier: AccountTier | None,
    reason: str | None,
    if_match: int | None,
) -> Account:
    """Classify and/or tier an account; a new tier restarts the follow-up reminder."""
    now = datetime.now(UTC)
    async with uow:
        repository = AccountRepository(uow)
        account = await repository.get_for_change(account_id, principal, if_match=if_match)
        if classification is not None:
            account.classify(classification, reason=reason or f"classified by {principal.sub}")
        if tier is not None:
            if account.next_follow_up_at is not None:
                await cancel_timer(uow, FOLLOW_UP_TIMER, key=_follow_up_key(account))
            account.set_tier(tier, now=now, by=principal.sub)
            await _schedule_follow_up(uow, account)
        await repository.save(account)
        await uow.commit()
    return account


async def account_follow_up_due(payload: dict, uow: UnitOfWork) -> None:
    """Timer: the account's follow-up fell due; announce it and schedule the next one."""
    repository = AccountRepository(uow)
    account = await repository.get(uuid.UUID(payload["account_id"]), None, for_update=True)
    if account is not None and account.follow_up_due(datetime.fromisoformat(payload["due_at"])):
        await repository.save(account)
        await _schedule_follow_up(uow, account)


async def list_contacts(
    account_id: uuid.UUID, principal: Principal, uow: UnitOfWork, page: PageParams
) -> tuple[list[Contact], str | None]:
    async with uow:
        await AccountRepository(uow).get_visible(account_id, principal)
        return await Contacts(uow).of_account(account_id, page)


async def add_contact(
    account_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    name: str,
    title: str | None,
    phone: str | None,
    email: str | None,
    phone_region: str,
) -> Contact:
    """A new contact person at an account; phone and e-mail are normalised as for leads."""
    contact = Contact(
        id=uuid.uuid4(),
        account_id=account_id,
        name=name,
        title=title,
        phone=normalize_phone(phone, phone_region) if phone else None,
        email=normalize_email(email) if email else None,
        created_at=datetime.now(UTC),
    )
    async with uow:
        await AccountRepository(uow).get_visible(account_id, principal)
        await Contacts(uow).add(contact)
        await uow.commit()
    return contact


# -- opportunities ----------------------------------------------------------------------------


async def get_opportunity(opportunity_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Opportunity:
    async with uow:
        return await OpportunityRepository(uow).get_visible(opportunity_id, principal)


async def list_opportunities(
    principal: Principal, uow: UnitOfWork, page: PageParams, *, by_weighted_value: bool, **filters: object
) -> tuple[list[Opportunity], str | None]:
    async with uow:
        return await OpportunityRepository(uow).list_ranked(
            principal, page, filters=filters, by_weighted_value=by_weighted_value
        )


async def update_opportunity(
    opportunity_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None, **changes: object
) -> Opportunity:
    async with uow:
        repository = OpportunityRepository(uow)
        opportunity = await repository.get_for_change(opportunity_id, principal, if_match=if_match)
        opportunity.update(**changes)  # type: ignore[arg-type]
        await repository.save(opportunity)
        await uow.commit()
    return opportunity


async def change_stage(
    opportunity_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    stage: Stage,
    lost_reason: str | None,
    if_match: int | None,
) -> Opportunity:
    """Move an open opportunity; ``lost`` needs a reason, ``won`` an accepted quote."""
    now = datetime.now(UTC)
    async with uow:
        repository = OpportunityRepository(uow)
        opportunity = await repository.get_for_change(opportunity_id, principal, if_match=if_match)
        if stage is Stage.LOST:
            opportunity.lose(lost_reason or "", by=principal.sub, now=now)
        elif stage is Stage.WON:
            await _win(uow, opportunity, by=principal.sub, now=now)
        else:
            opportunity.move_to(stage, by=principal.sub, now=now)
        await repository.save(opportunity)
        await uow.commit()
    return opportunity


async def _win(uow: UnitOfWork, opportunity: Opportunity, *, by: str, now: datetime) -> None:
    account = await AccountRepository(uow).get(opportunity.account_id, None)
    if account is None:
        raise RuntimeError(f"opportunity {opportunity.id} has no account")
    contact = await Contacts(uow).get(opportunity.contact_id) if opportunity.contact_id else None
    quote = await QuoteRepository(uow).accepted_for(opportunity.id)
    opportunity.win(
        quote.winning() if quote else None,
        customer_id=account.customer_id,
        customer_name=account.name,
        contact=contact.info if contact else None,
        by=by,
        now=now,
    )


# -- quotes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DraftQuote:
    lines: list[LineInput]
    valid_until: date
    extra_discount_pct: Decimal = Decimal(0)
    currency: str | None = None
    payment_terms: str | None = None
    delivery_address: str | None = None


async def draft_quote(
    opportunity_id: uuid.UUID, cmd: DraftQuote, principal: Principal, uow: UnitOfWork, *, rules: PriceRules
) -> Quote:
    """A quote on an open opportunity, priced by the current price rules; the extra discount
    must be within the author's authority (shared discount authority policy)."""
    now = datetime.now(UTC)
    async with uow:
        opportunity = await OpportunityRepository(uow).get_visible(opportunity_id, principal)
        opportunity.require_open("quote it")
        repository = QuoteRepository(uow)
        quote = Quote.draft(
            cmd.lines,
            rules=rules,
            policy=discount_authority(),
            author_roles=principal.roles,
            extra_discount_pct=cmd.extra_discount_pct,
            today=now.date(),
            id=uuid.uuid4(),
            number=await repository.next_number(now),
            opportunity_id=opportunity.id,
            account_id=opportunity.account_id,
            owner_id=opportunity.owner_id,
            team=opportunity.team,
            region=opportunity.region,
            currency=cmd.currency or opportunity.currency,
            valid_until=cmd.valid_until,
            payment_terms=cmd.payment_terms,
            delivery_address=cmd.delivery_address,
            created_by=principal.sub,
            created_at=now,
        )
        await repository.add(quote)
        await uow.commit()
    return quote


async def get_quote(quote_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Quote:
    async with uow:
        return await QuoteRepository(uow).get_visible(quote_id, principal)


async def list_quotes(
    principal: Principal, uow: UnitOfWork, page: PageParams, **filters: object
) -> tuple[list[Quote], str | None]:
    async with uow:
        return await QuoteRepository(uow).list(principal, page, filters=filters)


async def accept_quote(quote_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None) -> Quote:
    """The customer accepted: ``quote.accepted``. One accepted quote per open opportunity."""
    now = datetime.now(UTC)
    async with uow:
        repository = QuoteRepository(uow)
        quote = await repository.get_for_change(quote_id, principal, if_match=if_match)
        # Lock the opportunity: two quotes of it accepted at once must not both pass the check.
        opportunity = await OpportunityRepository(uow).get_for_change(quote.opportunity_id, None)
        opportunity.require_open("accept a quote for it")
        if await repository.accepted_for(opportunity.id) is not None:
            raise InvalidTransition("another quote of this opportunity is accepted already")
        quote.accept(by=principal.sub, now=now)
        await repository.save(quote)
        await uow.commit()
    return quote
