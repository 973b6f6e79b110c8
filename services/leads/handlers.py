"""Leads commands and queries. Each opens the unit of work (and commits when it writes)."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.leads.db import (
    AccountRepository,
    ActivityRepository,
    AssignmentCursors,
    Contacts,
    CustomerEvents,
    CustomerKeys,
    FunnelQueries,
    LeadClaims,
    LeadConversions,
    LeadFormRepository,
    LeadImports,
    LeadRepository,
    LeadScores,
    OpportunityRepository,
    OwnershipConflicts,
    QuoteRepository,
    ResponseQueries,
    SalesRepRepository,
    SalesTeamRepository,
    TargetRepository,
)
from services.leads.domain import (
    BY_CLAIM,
    BY_HAND,
    BY_RULES,
    CONTACT_KINDS,
    NO_FIRST_CONTACT,
    RELEASED,
    Account,
    Activity,
    ActivityKind,
    ActivityStatus,
    AssignmentPolicy,
    AssignmentRound,
    Attribution,
    CustomerMatch,
    DecisionTimeframe,
    GradingRules,
    KeyRegistration,
    Lead,
    LeadSource,
    MatchKey,
    MatchKind,
    NeedFit,
    RepStatus,
    SalesRep,
    SalesTeam,
    match_customer,
    match_keys,
    rule_key,
)
from services.leads.domain.account import AccountClassification, AccountTier
from services.leads.domain.behaviour import BehaviourModel, InteractionType
from services.leads.domain.conversion import Contact, ConversionRequest, convert
from services.leads.domain.funnel import Funnel, funnel
from services.leads.domain.matching import normalize_email, normalize_phone
from services.leads.domain.opportunity import Opportunity, Stage
from services.leads.domain.quote import LineInput, PriceRules, Quote
from services.leads.domain.response import Response, response
from services.leads.domain.target import Period, Target, may_set_target
from services.leads.domain.web_form import LeadForm
from shared.auth import INTEGRATION, REGIONAL_DIRECTOR, SALES_MANAGER, SALES_REP, Principal
from shared.domain import DomainError, InvalidTransition, NotFound, PreconditionFailed
from shared.events import AccountContactOverdue
from shared.pagination import PageParams
from shared.policies import discount_authority
from shared.scope import sees_everything
from shared.timers import cancel_timer, schedule_timer, schedule_timers
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
    cmd: RegisterLead,
    principal: Principal,
    uow: UnitOfWork,
    *,
    rules: GradingRules,
    phone_region: str,
    policy: AssignmentPolicy | None = None,
) -> Lead:
    """Register a lead; the first rep to register the customer (by any match key) owns it.

    Identifiers are normalised first (an invalid one is a 422 before anything is written). The
    lead's match keys are claimed in the customer-key registry; keys someone registered earlier
    link the lead to that earlier lead or account and make their owner this lead's owner. When
    that owner is another rep, the conflict is recorded (``ownership_conflict`` on the lead and
    one ``ownership_conflicts`` row per key), for a sales manager to settle. A lead nobody
    owns yet and that no rep registered goes to the rep the assignment rules choose (its
    first-contact clock starts), or to the pool when no rep is eligible.
    """
    async with uow:
        lead = await register_in(uow, cmd, principal, rules=rules, phone_region=phone_region, policy=policy)
        await uow.commit()
    return lead


async def register_in(
    uow: UnitOfWork,
    cmd: RegisterLead,
    principal: Principal,
    *,
    rules: GradingRules,
    phone_region: str,
    policy: AssignmentPolicy | None = None,
) -> Lead:
    """:func:`register_lead`'s work inside an open unit of work."""
    keys = match_keys(
        phone=cmd.phone, email=cmd.email, uscc=cmd.uscc, company_name=cmd.company_name, phone_region=phone_region
    )
    lead_id, now = uuid.uuid4(), datetime.now(UTC)
    # A rep owns the customers they register first; anyone else's leads (marketing, forms,
    # integrations, managers) are distributed by the assignment rules.
    by_rules = SALES_REP not in principal.roles
    registry = CustomerKeys(uow)
    claimant = None if by_rules else principal.sub
    claimed = await registry.claim(keys, owner_id=claimant, now=now, lead_id=lead_id)
    match = match_customer(await registry.registered([k for k in keys if k not in claimed]), claimant=claimant)
    owner_id, due = claimant, None
    team = None if by_rules else principal.team
    if match.owner_id is not None:
        owner_id = match.owner_id
        team = await SalesRepRepository(uow).team_of(owner_id, fallback=team if owner_id == principal.sub else None)
    elif by_rules:
        chosen = await _choose_by_rules(uow, cmd.region, cmd.industry)
        if chosen is not None:
            owner_id, team = chosen.id, chosen.team_id
            due = now + (policy or DEFAULT_POLICY).first_contact
    else:
        team = await SalesRepRepository(uow).team_of(principal.sub, fallback=principal.team)
    if owner_id != claimant:
        # The keys this lead added belong to the same customer, hence to its owner.
        await registry.transfer(sorted(claimed), owner_id)
    lead = _new_lead(
        rules, cmd, keys, match, principal, lead_id=lead_id, now=now, owner_id=owner_id, team=team, due=due
    )
    if due is not None:
        await _start_first_contact_clock(uow, lead, due)
    await LeadRepository(uow).add(lead)
    await OwnershipConflicts(uow).record(lead_id, principal.sub, list(match.conflicts), now)
    return lead


def _new_lead(
    rules: GradingRules,
    cmd: RegisterLead,
    keys: list[MatchKey],
    match: CustomerMatch,
    principal: Principal,
    *,
    lead_id: uuid.UUID,
    now: datetime,
    owner_id: str | None,
    team: str | None,
    due: datetime | None,
) -> Lead:
    """The registered lead (normalised identifiers, matches, owner), graded; ``due``: assigned by the rules."""
    by_kind = {k.kind: k.value for k in keys}
    return Lead.register(
        rules,
        assigned_by=principal.sub if due else None,
        first_contact_due_at=due,
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
        duplicate_of_lead_id=match.duplicate_of_lead_id,
        matched_account_id=match.matched_account_id,
        ownership_conflict=bool(match.conflicts),
        team=team,
    )


async def get_lead(lead_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Lead:
    async with uow:
        return await LeadRepository(uow).get_visible(lead_id, principal)


async def list_leads(
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
    **filters: object,
) -> tuple[list[Lead], str | None]:
    async with uow:
        return await LeadRepository(uow).list(
            principal, page, filters=filters, created_from=created_from, created_before=created_before
        )


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
        lead.override_owner(
            owner_id, by=principal.sub, reason=reason, team=await SalesRepRepository(uow).team_of(owner_id)
        )
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
    policy: AssignmentPolicy,
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
            # The owner's team (who else sees the account): the lead's, the CRM's, or the token's.
            team=lead.team
            or await SalesRepRepository(uow).team_of(lead.owner_id or principal.sub, fallback=principal.team),
            region=principal.region,
            now=now,
        )
        account = conversion.account
        if conversion.account_is_new:
            await accounts.add(account)
            registry = CustomerKeys(uow)
            for key in match_keys(phone=lead.phone, email=lead.email, uscc=lead.uscc, company_name=lead.company_name):
                await registry.link_account(key, account_id=account.id, owner_id=account.owner_id, now=now)
            await schedule_follow_up(uow, account)
            await start_account_contact_clock(uow, account, policy)
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


async def schedule_follow_up(uow: UnitOfWork, account: Account) -> None:
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
            await schedule_follow_up(uow, account)
        await repository.save(account)
        await uow.commit()
    return account


async def account_follow_up_due(payload: dict, uow: UnitOfWork) -> None:
    """Timer: the account's follow-up fell due; announce it and schedule the next one."""
    repository = AccountRepository(uow)
    account = await repository.get(uuid.UUID(payload["account_id"]), None, for_update=True)
    if account is not None and account.follow_up_due(datetime.fromisoformat(payload["due_at"])):
        await repository.save(account)
        await schedule_follow_up(uow, account)


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


# -- sales reps and teams ------------------------------------------------------------------


class OutOfScope(DomainError):
    status = 403
    title = "Outside your team or region"


@dataclass(frozen=True, slots=True)
class PutTeam:
    team_id: str
    name: str
    region: str | None = None
    manager_id: str | None = None


async def put_team(
    cmd: PutTeam, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> tuple[SalesTeam, bool]:
    """Create or update a team (admin; a regional director within their region)."""
    async with uow:
        teams = SalesTeamRepository(uow)
        team = await teams.get(cmd.team_id, None, for_update=True)  # type: ignore[arg-type]
        if team is not None and not may_manage_team(principal, team):
            raise NotFound(f"no sales team {cmd.team_id}")
        if not may_manage_team(
            principal, SalesTeam(id=cmd.team_id, name=cmd.name, created_at=_now(), region=cmd.region)
        ):
            raise OutOfScope("a regional director manages the teams of their own region")
        created = team is None
        if team is None:
            team = SalesTeam(id=cmd.team_id, name=cmd.name, created_at=_now())
            team.update(name=cmd.name, region=cmd.region, manager_id=cmd.manager_id)
            await teams.add(team)
        else:
            if if_match is not None and if_match != team.version:
                raise PreconditionFailed("the sales team has changed since you read it")
            team.update(name=cmd.name, region=cmd.region, manager_id=cmd.manager_id)
            await teams.save(team)
        await uow.commit()
    return team, created


def may_manage_team(principal: Principal, region: str | None) -> bool:
    if principal.is_admin:
        return True
    return REGIONAL_DIRECTOR in principal.roles and region is not None and region == principal.region


async def get_team(team_id: str, principal: Principal, uow: UnitOfWork) -> SalesTeam:
    async with uow:
        return await SalesTeamRepository(uow).get_visible(team_id, principal)  # type: ignore[arg-type]


async def list_teams(principal: Principal, uow: UnitOfWork, page: PageParams, **filters: object):
    async with uow:
        return await SalesTeamRepository(uow).list(principal, page, filters=filters)


@dataclass(frozen=True, slots=True)
class PutRep:
    rep_id: str
    name: str
    team_id: str | None = None
    region: str | None = None
    industries: tuple[str, ...] = ()
    capacity: int = 50
    status: RepStatus = RepStatus.ACTIVE


async def put_rep(
    cmd: PutRep, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> tuple[SalesRep, bool]:
    """Create or update a rep (admin; a regional director within their region; a sales manager
    for the teams they manage). A rep put on leave or made inactive keeps their leads but gets
    no new ones. A rep moved to another team takes their open work along (the new manager sees
    it, the old one no longer does); closed work stays with the old team for the reports. No
    event: the owner, which events carry, is unchanged. Objects' ``region`` is the customer's,
    not the rep's, so a new rep region moves nothing."""
    async with uow:
        reps = SalesRepRepository(uow)
        rep = await reps.lock(cmd.rep_id)
        if rep is not None and not _may_manage_rep(principal, rep.team_id, rep.region):
            raise NotFound(f"no sales rep {cmd.rep_id}")
        if cmd.team_id is not None and await SalesTeamRepository(uow).get(cmd.team_id, None) is None:  # type: ignore[arg-type]
            raise DomainError(f"no sales team {cmd.team_id}")
        if not _may_manage_rep(principal, cmd.team_id, cmd.region):
            raise OutOfScope("you may manage the reps of your own teams (managers) or region (directors)")
        fields = {
            "name": cmd.name,
            "team_id": cmd.team_id,
            "region": cmd.region,
            "industries": cmd.industries,
            "capacity": cmd.capacity,
            "status": cmd.status,
        }
        created = rep is None
        if rep is None:
            rep = SalesRep(id=cmd.rep_id, name=cmd.name, created_at=_now())
            rep.update(**fields)  # type: ignore[arg-type]
            await reps.add(rep)
        else:
            if if_match is not None and if_match != rep.version:
                raise PreconditionFailed("the sales rep has changed since you read it")
            previous_team = rep.team_id
            rep.update(**fields)  # type: ignore[arg-type]
            await reps.save(rep)
            if rep.team_id != previous_team:
                await reps.move_open_work(rep.id, rep.team_id)
        await uow.commit()
    return rep, created


def _may_manage_rep(principal: Principal, team_id: str | None, region: str | None) -> bool:
    """Admin any rep; a regional director those of their region; a manager those of their team
    (the token's ``team`` claim, as for every other object in this service)."""
    if principal.is_admin:
        return True
    if REGIONAL_DIRECTOR in principal.roles and region is not None and region == principal.region:
        return True
    return SALES_MANAGER in principal.roles and team_id is not None and team_id == principal.team


async def get_rep(rep_id: str, principal: Principal, uow: UnitOfWork) -> SalesRep:
    async with uow:
        return await SalesRepRepository(uow).get_visible(rep_id, principal)  # type: ignore[arg-type]


async def list_reps(principal: Principal, uow: UnitOfWork, page: PageParams, **filters: object):
    async with uow:
        return await SalesRepRepository(uow).list(principal, page, filters=filters)


# -- assignment ----------------------------------------------------------------------------

FIRST_CONTACT_TIMER = "lead.first_contact"
DEFAULT_POLICY = AssignmentPolicy()


def _now() -> datetime:
    return datetime.now(UTC)


async def _choose_by_rules(
    uow: UnitOfWork, region: str | None, industry: str | None, *, exclude: tuple[str, ...] = ()
) -> SalesRep | None:
    """The rep the rules give a lead of ``region``/``industry`` (None: the pool). The candidate
    reps stay locked until the transaction ends, so concurrent assignments count each other."""
    reps = SalesRepRepository(uow)
    candidates = await reps.lock_candidates(region)
    cursors, rule = AssignmentCursors(uow), rule_key(region, industry)
    loads = await reps.loads([r.id for r in candidates])
    chosen = AssignmentRound(candidates, loads, {rule: await cursors.get(rule)}).choose(
        region, industry, exclude=exclude
    )
    if chosen is None:
        return None
    await cursors.set(rule, chosen.id)
    return chosen


async def _start_first_contact_clock(uow: UnitOfWork, lead: Lead, due: datetime) -> None:
    """The durable 24 h timer: it checks at ``due`` that this assignment got its first contact.

    One timer per assignment (the key names it): the timer handler itself reassigns the lead,
    and a timer row cannot be re-armed from its own handler (the poller marks it fired after)."""
    key, due, payload = _first_contact_timer(lead, due)
    await schedule_timer(uow, FIRST_CONTACT_TIMER, key=key, due_at=due, payload=payload)


def _first_contact_timer(lead: Lead, due: datetime) -> tuple[str, datetime, dict[str, Any]]:
    assert lead.owner_id is not None and lead.assigned_at is not None
    payload = {"lead_id": str(lead.id), "owner_id": lead.owner_id, "assigned_at": lead.assigned_at.isoformat()}
    return _first_contact_key(lead), due, payload


def _first_contact_key(lead: Lead) -> str:
    assert lead.assigned_at is not None
    return f"{lead.id}@{lead.assigned_at.isoformat()}"


async def _stop_first_contact_clock(uow: UnitOfWork, lead: Lead) -> None:
    if lead.assigned_at is not None:
        await cancel_timer(uow, FIRST_CONTACT_TIMER, key=_first_contact_key(lead))


async def _give(uow: UnitOfWork, lead: Lead, rep: SalesRep, *, method: str, by: str, policy: AssignmentPolicy) -> None:
    now = _now()
    due = now + policy.first_contact
    await _stop_first_contact_clock(uow, lead)  # the previous assignment's
    lead.assign(rep.id, team=rep.team_id, method=method, by=by, now=now, first_contact_due_at=due)
    await CustomerKeys(uow).follow_lead(lead.id, rep.id)
    await _start_first_contact_clock(uow, lead, due)


async def assign_lead(
    lead_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    owner_id: str | None,
    policy: AssignmentPolicy = DEFAULT_POLICY,
    if_match: int | None = None,
) -> Lead:
    """A manager assigns a lead by hand to an active rep they manage (``owner_id``), or, with
    ``owner_id`` None, by the rules to someone other than its current owner. Beyond the rep's
    capacity is allowed by hand: it is the manager's call."""
    async with uow:
        repository = LeadRepository(uow)
        lead = await repository.get_for_change(lead_id, principal, if_match=if_match)
        if owner_id is None:
            exclude = tuple(x for x in (lead.owner_id,) if x)
            chosen = await _choose_by_rules(uow, lead.region, lead.industry, exclude=exclude)
            if chosen is None:
                raise DomainError("no eligible rep has room for this lead")
            await _give(uow, lead, chosen, method=BY_RULES, by=principal.sub, policy=policy)
        else:
            rep = await SalesRepRepository(uow).lock(owner_id)
            if rep is None or not _may_manage_rep(principal, rep.team_id, rep.region):
                raise DomainError(f"{owner_id} is not a sales rep you manage")
            if rep.status is not RepStatus.ACTIVE:
                raise DomainError(f"{owner_id} is {rep.status.value}: inactive reps get no leads")
            await _give(uow, lead, rep, method=BY_HAND, by=principal.sub, policy=policy)
        await repository.save(lead)
        await uow.commit()
    return lead


# -- public pool ---------------------------------------------------------------------------


class NotARep(DomainError):
    status = 403
    title = "Not an active sales rep"


class ClaimRefused(DomainError):
    status = 409
    title = "Claim refused"


async def list_pool(
    principal: Principal, uow: UnitOfWork, page: PageParams, *, region: str | None, industry: str | None
) -> tuple[list[Lead], str | None]:
    async with uow:
        return await LeadRepository(uow).pool(page, region=region, industry=industry)


async def claim_lead(
    lead_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, policy: AssignmentPolicy | None = None
) -> Lead:
    """A rep takes a lead from the pool. Of concurrent claims of one lead exactly one wins (the
    lead row is locked; the others find it gone from the pool: 404). The rep's own row is locked
    too, so their concurrent claims count each other against the daily limit and capacity."""
    policy = policy or DEFAULT_POLICY
    now = _now()
    async with uow:
        reps = SalesRepRepository(uow)
        rep = await reps.lock(principal.sub)
        if rep is None or rep.status is not RepStatus.ACTIVE:
            raise NotARep("only an active, registered sales rep claims leads from the pool")
        repository = LeadRepository(uow)
        lead = await repository.get_for_change(lead_id, principal)
        if not lead.in_pool:
            raise ClaimRefused("the lead is not in the pool")
        if lead.returned_from == rep.id:
            raise ClaimRefused("this lead was taken from you for want of a first contact: another rep gets it")
        claims = LeadClaims(uow)
        if await claims.count_since(rep.id, policy.day_start(now)) >= policy.claims_per_day:
            raise ClaimRefused(f"you have claimed {policy.claims_per_day} leads today, the daily limit")
        if (await reps.loads([rep.id])).get(rep.id, 0) >= rep.capacity:
            raise ClaimRefused(f"you own {rep.capacity} leads, your capacity")
        await _give(uow, lead, rep, method=BY_CLAIM, by=rep.id, policy=policy)
        await claims.record(rep.id, lead.id, now)
        await repository.save(lead)
        await uow.commit()
    return lead


async def release_lead(
    lead_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, reason: str, if_match: int | None = None
) -> Lead:
    """Its rep (or their manager, director, admin) gives a lead back to the pool, saying why."""
    async with uow:
        repository = LeadRepository(uow)
        lead = await repository.get_for_change(lead_id, principal, if_match=if_match)
        await _stop_first_contact_clock(uow, lead)
        lead.return_to_pool(reason=RELEASED, by=principal.sub, now=_now(), note=reason)
        await CustomerKeys(uow).follow_lead(lead.id, None)
        await repository.save(lead)
        await uow.commit()
    return lead


# -- activities ----------------------------------------------------------------------------

ACTIVITY_FOLLOW_UP_TIMER = "activity.follow_up"
ACCOUNT_CONTACT_TIMER = "account.first_contact"


@dataclass(frozen=True, slots=True)
class LogActivity:
    kind: ActivityKind
    occurred_at: datetime
    lead_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    outcome: str | None = None
    notes: str | None = None
    next_follow_up_at: datetime | None = None
    planned: bool = False  # a visit planned ahead: the manager approves it, a report follows


async def log_activity(cmd: LogActivity, principal: Principal, uow: UnitOfWork) -> Activity:
    """Log a call, visit, e-mail, meeting or note on a lead or account the caller may change.

    A contact on a lead is its owner's first contact when none was logged since the lead was
    assigned: the first-contact clock stops. ``next_follow_up_at`` arms a durable reminder.
    """
    now = _now()
    if cmd.occurred_at > now + CLOCK_SKEW and not cmd.planned:
        raise DomainError("occurred_at is in the future: log what happened (or plan a visit)")
    async with uow:
        owner_id, first = await _contact(
            uow,
            principal,
            cmd.lead_id,
            cmd.account_id,
            cmd.occurred_at,
            count=not cmd.planned and cmd.kind in CONTACT_KINDS,
        )
        activity = Activity.log(
            owner_id=owner_id,
            id=uuid.uuid4(),
            kind=cmd.kind,
            logged_by=principal.sub,
            occurred_at=cmd.occurred_at,
            created_at=now,
            lead_id=cmd.lead_id,
            account_id=cmd.account_id,
            outcome=cmd.outcome,
            notes=cmd.notes,
            next_follow_up_at=cmd.next_follow_up_at,
            first_contact=first,
            status=ActivityStatus.PLANNED if cmd.planned else ActivityStatus.DONE,
        )
        await ActivityRepository(uow).add(activity)
        if activity.next_follow_up_at is not None:
            await schedule_timer(uow, ACTIVITY_FOLLOW_UP_TIMER, key=str(activity.id), due_at=activity.next_follow_up_at)
        await uow.commit()
    return activity


CLOCK_SKEW = timedelta(minutes=5)


async def _contact(
    uow: UnitOfWork,
    principal: Principal,
    lead_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    at: datetime,
    *,
    count: bool,
) -> tuple[str | None, bool]:
    """The lead or account an activity is on, checked in the caller's scope; with ``count``, a
    contact: the lead owner's first one stops its first-contact clock, an account's its 7-day
    clock. Returns the owner and whether it was the lead owner's first contact."""
    if lead_id is not None:
        leads = LeadRepository(uow)
        lead = await leads.get_for_change(lead_id, principal)
        if lead.in_pool and count:
            raise InvalidTransition("the lead is in the pool: claim it before contacting it")
        if count and lead.contacted(at):
            await _stop_first_contact_clock(uow, lead)
            await leads.save(lead)
            return lead.owner_id, True
        return lead.owner_id, False
    assert account_id is not None
    account = await AccountRepository(uow).get_visible(account_id, principal)
    if count:
        await cancel_timer(uow, ACCOUNT_CONTACT_TIMER, key=str(account.id))
    return account.owner_id, False


async def review_visit(
    activity_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, approved: bool, note: str | None
) -> Activity:
    """A manager (director, admin) approves or turns down a planned visit in their scope."""
    async with uow:
        activities = ActivityRepository(uow)
        activity = await _activity_in_scope(activities, activity_id, principal, uow)
        activity.review(approved=approved, by=principal.sub, note=note)
        await activities.save(activity)
        await uow.commit()
    return activity


async def report_visit(
    activity_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, outcome: str | None, notes: str | None
) -> Activity:
    """The report of an approved visit that happened: from now it counts as a contact."""
    now = _now()
    async with uow:
        activities = ActivityRepository(uow)
        activity = await _activity_in_scope(activities, activity_id, principal, uow)
        activity.require_reportable(now)
        _, first = await _contact(
            uow, principal, activity.lead_id, activity.account_id, activity.occurred_at, count=True
        )
        activity.report(outcome=outcome, notes=notes, by=principal.sub, now=now, first_contact=first)
        await activities.save(activity)
        await uow.commit()
    return activity


async def _activity_in_scope(
    activities: ActivityRepository, activity_id: uuid.UUID, principal: Principal, uow: UnitOfWork
) -> Activity:
    activity = await activities.get(activity_id, None, for_update=True)
    if activity is None:
        raise NotFound(f"no activity {activity_id}")
    try:
        if activity.lead_id is not None:
            await LeadRepository(uow).get_visible(activity.lead_id, principal)
        else:
            await AccountRepository(uow).get_visible(activity.account_id, principal)  # type: ignore[arg-type]
    except NotFound:
        raise NotFound(f"no activity {activity_id}") from None
    return activity


async def list_activities(
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    lead_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
) -> tuple[list[Activity], str | None]:
    """The activities of a lead or account the caller may see, oldest first."""
    async with uow:
        if lead_id is not None:
            leads = LeadRepository(uow)
            await leads.get_visible(lead_id, principal)
            # A lead's history includes the leads merged into it.
            return await ActivityRepository(uow).of_leads([lead_id, *await leads.merged_into(lead_id)], page)
        assert account_id is not None
        await AccountRepository(uow).get_visible(account_id, principal)
        return await ActivityRepository(uow).list(
            principal, page, filters={"lead_id": lead_id, "account_id": account_id}
        )


# -- durable timers (run by the worker inside the transaction that marks them fired) --------


async def first_contact_deadline(payload: dict, uow: UnitOfWork, *, policy: AssignmentPolicy) -> None:
    """The 24 h rule: an assignment without a logged contact returns the lead to the pool, and
    the rules give it to another rep (never the one it was taken from), or it stays in the pool.
    Stale timers (the lead was contacted, released or reassigned since) do nothing."""
    leads = LeadRepository(uow)
    lead = await leads.get(uuid.UUID(payload.get("lead_id") or payload["_key"]), None, for_update=True)
    assigned_at = datetime.fromisoformat(payload["assigned_at"])
    if lead is None or not lead.awaits_first_contact(payload["owner_id"], assigned_at):
        return
    previous = payload["owner_id"]
    lead.return_to_pool(reason=NO_FIRST_CONTACT, by=SYSTEM, now=_now())
    await CustomerKeys(uow).follow_lead(lead.id, None)
    chosen = await _choose_by_rules(uow, lead.region, lead.industry, exclude=(previous,))
    if chosen is not None:
        await _give(uow, lead, chosen, method=BY_RULES, by=SYSTEM, policy=policy)
    await leads.save(lead)


SYSTEM = "system"


async def start_account_contact_clock(uow: UnitOfWork, account: Account, policy: AssignmentPolicy) -> None:
    """Call when an account is created (e.g. by converting a lead): unless a contact is logged on
    it within ``policy.account_contact``, its owner's manager gets ``account.contact_overdue``."""
    await schedule_timer(
        uow,
        ACCOUNT_CONTACT_TIMER,
        key=str(account.id),
        due_at=account.created_at + policy.account_contact,
        payload={"created_at": account.created_at.isoformat()},
    )


async def account_contact_deadline(payload: dict, uow: UnitOfWork) -> None:
    account = await AccountRepository(uow).get(uuid.UUID(payload["_key"]), None)
    if account is None:
        return
    created_at = datetime.fromisoformat(payload["created_at"])
    if await ActivityRepository(uow).contact_since(account.id, created_at):
        return
    team_id = await SalesRepRepository(uow).team_of(account.owner_id)
    team = await SalesTeamRepository(uow).get(team_id, None) if team_id else None  # type: ignore[arg-type]
    uow.emit(
        AccountContactOverdue(
            account_id=str(account.id),
            customer_name=account.name,
            owner_id=account.owner_id,
            manager_id=team.manager_id if team else None,
            created_at=created_at,
            due_at=_now(),
        ),
        subject=str(account.id),
    )


async def follow_up_due(payload: dict, uow: UnitOfWork) -> None:
    """An activity's planned follow-up fell due: remind the lead's or account's owner now."""
    activities = ActivityRepository(uow)
    activity = await activities.get(uuid.UUID(payload["_key"]), None, for_update=True)
    if activity is None or activity.next_follow_up_at is None:
        return
    if activity.lead_id is not None:
        lead = await LeadRepository(uow).get(activity.lead_id, None)
        owner_id = lead.owner_id if lead else None
    else:
        account = await AccountRepository(uow).get(activity.account_id, None)  # type: ignore[arg-type]
        owner_id = account.owner_id if account else None
    activity.follow_up_due(owner_id)
    await activities.save(activity)


# -- targets ----------------------------------------------------------------------------------


async def set_team_target(
    principal: Principal,
    uow: UnitOfWork,
    *,
    team: str,
    region: str | None,
    period: str,
    currency: str,
    amount: Decimal,
    reps: list[tuple[str, Decimal]],
    tz: ZoneInfo,
) -> list[Target]:
    """A team's target for a period and its decomposition over the reps; one per team and period."""
    region = region or principal.region
    may_set_target(principal.roles, sub_team=principal.team, sub_region=principal.region, team=team, region=region)
    created = Target.for_team(
        team=team,
        region=region,
        period=Period.parse(period),
        currency=currency,
        amount=amount,
        reps=reps,
        tz=tz,
        by=principal.sub,
        now=datetime.now(UTC),
    )
    async with uow:
        repository = TargetRepository(uow)
        if await repository.lock_team_period(team, created[0].period):
            raise InvalidTransition(f"team {team} has a target for {period} already")
        for target in created:
            await repository.add(target)
        await uow.commit()
    return created


async def list_targets(
    principal: Principal, uow: UnitOfWork, page: PageParams, **filters: object
) -> tuple[list[tuple[Target, Decimal]], str | None]:
    async with uow:
        return await TargetRepository(uow).with_achievement(principal, page, filters=filters)


async def get_target(target_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> tuple[Target, Decimal]:
    async with uow:
        found, _ = await TargetRepository(uow).with_achievement(
            principal, PageParams(limit=1, cursor=None), filters={}, target_id=target_id
        )
    if not found:
        raise NotFound(f"no target {target_id}")
    return found[0]


# -- customer timeline ------------------------------------------------------------------------


async def account_timeline(account_id: uuid.UUID, principal: Principal, uow: UnitOfWork, page: PageParams):
    async with uow:
        account = await AccountRepository(uow).get_visible(account_id, principal)
        return await CustomerEvents(uow).timeline(account, page)


# -- reports ----------------------------------------------------------------------------------


async def funnel_report(
    principal: Principal,
    uow: UnitOfWork,
    *,
    currency: str,
    created_from: datetime | None,
    created_to: datetime | None,
    **filters: str | None,
) -> Funnel:
    """The funnel of the opportunities the caller may see, created in the period, in ``currency``."""
    async with uow:
        current, reached, seconds = await FunnelQueries(uow).figures(
            principal, currency=currency, filters=filters, created_from=created_from, created_to=created_to
        )
    return funnel(current, reached, seconds)


async def response_report(
    principal: Principal,
    uow: UnitOfWork,
    *,
    assigned_from: datetime | None,
    assigned_to: datetime | None,
    **filters: str | None,
) -> Response:
    """Time to first contact and pool returns, per rep and in total, over the assignments made in
    the period that the caller may see (a rep their own, a manager their team's, ...)."""
    async with uow:
        per_rep, total = await ResponseQueries(uow).figures(
            principal, filters=filters, assigned_from=assigned_from, assigned_to=assigned_to
        )
    return response(per_rep, total)


# -- web-to-lead forms ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PutForm:
    form_id: str
    name: str
    source: LeadSource = LeadSource.WEB_FORM
    campaign: str | None = None
    region: str | None = None
    industry: str | None = None
    rate_limit_per_minute: int = 60
    active: bool = True


async def put_form(
    cmd: PutForm, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> tuple[LeadForm, str | None]:
    """Create or update a web form; a new form gets its API key (returned once, else None)."""
    fields = {
        "name": cmd.name,
        "source": cmd.source,
        "campaign": cmd.campaign,
        "region": cmd.region,
        "industry": cmd.industry,
        "rate_limit_per_minute": cmd.rate_limit_per_minute,
        "active": cmd.active,
    }
    key = None
    async with uow:
        forms = LeadFormRepository(uow)
        form = await forms.get(cmd.form_id, None, for_update=True)  # type: ignore[arg-type]
        if form is None:
            form = LeadForm(id=cmd.form_id, name=cmd.name, created_at=_now())
            form.update(**fields)  # type: ignore[arg-type]
            key = form.new_key()
            await forms.add(form)
        else:
            if if_match is not None and if_match != form.version:
                raise PreconditionFailed("the lead form has changed since you read it")
            form.update(**fields)  # type: ignore[arg-type]
            await forms.save(form)
        await uow.commit()
    return form, key


async def rotate_form_key(form_id: str, principal: Principal, uow: UnitOfWork) -> tuple[LeadForm, str]:
    async with uow:
        forms = LeadFormRepository(uow)
        form = await forms.get_for_change(form_id, principal)  # type: ignore[arg-type]
        key = form.new_key()
        await forms.save(form)
        await uow.commit()
    return form, key


async def get_form(form_id: str, principal: Principal, uow: UnitOfWork) -> LeadForm:
    async with uow:
        return await LeadFormRepository(uow).get_visible(form_id, principal)  # type: ignore[arg-type]


async def list_forms(principal: Principal, uow: UnitOfWork, page: PageParams):
    async with uow:
        return await LeadFormRepository(uow).list(principal, page)


class FormKeyRefused(DomainError):
    status = 401
    title = "Unknown form or wrong key"


class FormRateLimited(DomainError):
    status = 429
    title = "Too many submissions from this form"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"this form sent too many leads this minute; retry in {retry_after} s")
        self.retry_after = retry_after


async def submit_form(
    form_id: str,
    key: str | None,
    cmd: RegisterLead,
    uow: UnitOfWork,
    *,
    honeypot_filled: bool,
    rules: GradingRules,
    phone_region: str,
    policy: AssignmentPolicy,
) -> None:
    """A public web form's submission. An unknown form and a wrong key look the same (401); the
    form's rate limit counts every accepted-key submission (429 beyond it); a filled honeypot is
    dropped silently. The caller answers the same whether a lead was created, linked to an
    earlier one, or dropped: a form never learns whether a customer was already known."""
    now = _now()
    async with uow:
        forms = LeadFormRepository(uow)
        form = await forms.get(form_id, None)  # type: ignore[arg-type]
        if form is None or not form.accepts(key):
            raise FormKeyRefused("unknown form or wrong key")
        window = now.replace(second=0, microsecond=0)
        if await forms.count_submission(form.id, window) > form.rate_limit_per_minute:
            await uow.commit()
            raise FormRateLimited(retry_after=60 - now.second)
        await uow.commit()
    if honeypot_filled:
        return  # a bot: nothing is written, and it is not told
    campaign = cmd.attribution.campaign or form.campaign
    cmd = replace(
        cmd,
        source=form.source,
        region=cmd.region or form.region,
        industry=cmd.industry or form.industry,
        attribution=replace(cmd.attribution, campaign=campaign),
    )
    principal = Principal(sub=f"form:{form.id}", roles=frozenset({INTEGRATION}))
    await register_lead(cmd, principal, uow, rules=rules, phone_region=phone_region, policy=policy)


# -- behaviour score -----------------------------------------------------------------------------


async def _lead_for_interactions(uow: UnitOfWork, lead_id: uuid.UUID, principal: Principal) -> Lead:
    """Marketing automation (integration clients) reports interactions for any lead; people
    for the leads they may see."""
    repository = LeadRepository(uow)
    if INTEGRATION in principal.roles:
        lead = await repository.get(lead_id, None)
        if lead is None:
            raise NotFound(f"no lead {lead_id}")
        return lead
    return await repository.get_visible(lead_id, principal)


async def record_interaction(
    lead_id: uuid.UUID,
    kind: InteractionType,
    occurred_at: datetime,
    principal: Principal,
    uow: UnitOfWork,
    *,
    model: BehaviourModel,
) -> int:
    """Add an interaction to the lead's behaviour score; returns the score now."""
    now = _now()
    if occurred_at > now + CLOCK_SKEW:
        raise DomainError("occurred_at is in the future")
    async with uow:
        lead = await _lead_for_interactions(uow, lead_id, principal)
        scores = LeadScores(uow)
        total, as_of = await scores.lock(lead.id)
        total, as_of = model.add(total, as_of, kind, occurred_at)
        interaction = {
            "id": uuid.uuid4(),
            "type": kind.value,
            "occurred_at": occurred_at,
            "recorded_by": principal.sub,
            "created_at": now,
        }
        await scores.record(lead.id, total, as_of, interaction)
        await uow.commit()
    return model.score(total, as_of, now)


async def behaviour(
    lead_id: uuid.UUID, principal: Principal, uow: UnitOfWork, page: PageParams, *, model: BehaviourModel
) -> tuple[int, list, str | None]:
    """The lead's behaviour score now, and its interactions (oldest recorded first)."""
    async with uow:
        lead = await _lead_for_interactions(uow, lead_id, principal)
        scores = LeadScores(uow)
        total, as_of = await scores.get(lead.id)
        rows, next_cursor = await scores.interactions(lead.id, page)
    return model.score(total, as_of, _now()), rows, next_cursor


# -- merging duplicates --------------------------------------------------------------------------


async def merge_leads(
    lead_id: uuid.UUID,
    duplicate_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    reason: str | None,
    model: BehaviourModel,
    if_match: int | None = None,
) -> Lead:
    """Merge ``duplicate_id`` into ``lead_id`` (both in the caller's scope): the duplicate keeps
    its history, is marked merged and follows the survivor's owner; its customer keys and
    behaviour points join the survivor; the survivor's activity list includes the duplicate's.
    A converted lead is not merged away; a pool lead only by a manager, director or admin."""
    if lead_id == duplicate_id:
        raise DomainError("a lead cannot be merged into itself")
    async with uow:
        repository = LeadRepository(uow)
        locked = {}
        for each in sorted((lead_id, duplicate_id)):  # one lock order: no deadlock
            locked[each] = await repository.get_for_change(
                each, principal, if_match=if_match if each == lead_id else None
            )
        survivor, duplicate = locked[lead_id], locked[duplicate_id]
        if duplicate.in_pool and not sees_everything(principal):
            raise InvalidTransition("claim the pool lead before merging it")
        if await LeadConversions(uow).of_lead(duplicate.id) is not None:
            raise InvalidTransition("that lead was converted: merge the other one into it instead")
        await _stop_first_contact_clock(uow, duplicate)
        survivor.absorb(duplicate, by=principal.sub, reason=reason, now=_now())
        await repository.repoint_merged(duplicate.id, survivor)
        await CustomerKeys(uow).move_lead(duplicate.id, survivor.id, survivor.owner_id)
        await LeadScores(uow).merge(duplicate.id, survivor.id, model)
        await repository.save(duplicate)
        await repository.save(survivor)
        await uow.commit()
    return survivor


# -- bulk import (CSV) ---------------------------------------------------------------------------

IMPORT_TIMER = "lead_import.chunk"
IMPORT_CHUNK = 500
IMPORT_COLUMNS = (
    "source",
    "company_name",
    "contact_name",
    "phone",
    "email",
    "uscc",
    "region",
    "industry",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)


def parse_csv(content: bytes) -> list[dict[str, str]]:
    """The rows of a UTF-8 CSV (a BOM is fine) whose header names known columns; 422 otherwise."""
    try:
        text_ = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainError("the file is not UTF-8 CSV") from exc
    if "\x00" in text_:
        raise DomainError("the file contains NUL characters")
    reader = csv.reader(io.StringIO(text_, newline=""))
    return _import_rows(next(reader, []), reader)


def parse_xlsx(content: bytes) -> list[dict[str, str]]:
    """The rows of an XLSX workbook's first sheet (the first row is the header)."""
    import openpyxl  # only imports need it

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:
        raise DomainError("the file is not an XLSX workbook") from exc
    try:
        cells = workbook.worksheets[0].iter_rows(values_only=True)
        as_text = ([("" if v is None else str(v)).replace("\x00", "") for v in row] for row in cells)
        return _import_rows(next(as_text, []), as_text)
    finally:
        workbook.close()


def _import_rows(header: list[str], rows: Iterable[list[str]]) -> list[dict[str, str]]:
    header = [h.strip().lstrip("\ufeff") for h in header]
    unknown = [h for h in header if h and h not in IMPORT_COLUMNS]
    if not header or unknown or not {"company_name", "phone", "email"} & set(header):
        raise DomainError(
            f"the header must name columns among {', '.join(IMPORT_COLUMNS)} (one of company_name, phone, "
            f"email at least); unknown: {', '.join(unknown) or 'none'}"
        )
    out = []
    for row in rows:
        values = {h: v.strip() for h, v in zip(header, row, strict=False) if h and v and v.strip()}
        if any(row):
            out.append(values)
    return out


async def start_import(
    content: bytes, filename: str | None, principal: Principal, uow: UnitOfWork, *, xlsx: bool = False
) -> tuple[Any, bool]:
    """Store a CSV's or XLSX's rows for the worker; the same file again is the same import (False)."""
    sha = hashlib.sha256(content).hexdigest()
    async with uow:
        imports = LeadImports(uow)
        existing = await imports.by_hash(sha)
        if existing is not None:
            return existing, False
        rows = parse_xlsx(content) if xlsx else parse_csv(content)
        import_id, now = uuid.uuid4(), _now()
        row = {
            "id": import_id,
            "file_sha256": sha,
            "filename": filename,
            "status": "running",
            "rows_total": len(rows),
            "rows_done": 0,
            "created": 0,
            "merged": 0,
            "rejected": 0,
            "created_by": principal.sub,
            "created_at": now,
        }
        created = await imports.create(row, rows)
        if created is None:  # the same file, uploaded twice at once
            await uow.rollback()
            return await imports.by_hash(sha), False
        if not rows:
            await imports.progress(import_id, status="done", finished_at=now)
        else:
            await schedule_timer(
                uow, IMPORT_TIMER, key=f"{import_id}:0", due_at=now, payload={"import_id": str(import_id), "after": 0}
            )
        await uow.commit()
        return created, True


async def import_chunk(
    payload: dict, uow: UnitOfWork, *, rules: GradingRules, phone_region: str, policy: AssignmentPolicy
) -> None:
    """Register the next rows of an import (a bad row is reported, the others go on), record the
    progress and schedule the next chunk, all in the timer's transaction: one timer per chunk, so
    a worker killed mid-chunk leaves nothing of it, and the chunk runs again after a restart."""
    import_id, after = uuid.UUID(payload["import_id"]), int(payload["after"])
    imports = LeadImports(uow)
    state = await imports.get(import_id, for_update=True)
    if state is None or state.rows_done != after:
        return
    principal = Principal(sub=f"import:{import_id}", roles=frozenset({INTEGRATION}))
    rows = await imports.rows(import_id, after, IMPORT_CHUNK)
    commands, errors = [], []
    for row in rows:
        try:
            cmd = import_command(dict(row.data))
            keys = match_keys(
                phone=cmd.phone,
                email=cmd.email,
                uscc=cmd.uscc,
                company_name=cmd.company_name,
                phone_region=phone_region,
            )
        except (DomainError, ValueError) as exc:
            errors.append((row.row_number, str(exc)[:500]))
        else:
            commands.append((cmd, keys))
    leads = await register_many(uow, commands, principal, rules=rules, policy=policy)
    merged = sum(1 for lead in leads if lead.duplicate_of_lead_id or lead.matched_account_id)
    await imports.reject_many(import_id, errors)
    done = after + len(rows)
    await imports.forget_rows(import_id, after, done)
    finished = done >= state.rows_total
    await imports.progress(
        import_id,
        rows_done=done,
        created=state.created + len(leads) - merged,
        merged=state.merged + merged,
        rejected=state.rejected + len(errors),
        status="done" if finished else "running",
        finished_at=_now() if finished else None,
    )
    if not finished:
        await schedule_timer(
            uow,
            IMPORT_TIMER,
            key=f"{import_id}:{done}",
            due_at=_now(),
            payload={"import_id": str(import_id), "after": done},
        )


def import_command(data: dict[str, str]) -> RegisterLead:
    """A row of an import as a registration (the columns were checked at upload)."""
    return RegisterLead(
        source=LeadSource(data.pop("source", LeadSource.IMPORT.value)),
        attribution=Attribution(**{k: data.pop(k) for k in list(data) if k == "campaign" or k.startswith("utm_")}),
        **data,
    )


async def register_many(
    uow: UnitOfWork,
    commands: list[tuple[RegisterLead, list[MatchKey]]],
    principal: Principal,
    *,
    rules: GradingRules,
    policy: AssignmentPolicy | None = None,
) -> list[Lead]:
    """:func:`register_in` for many leads (each with its match keys) registered by a principal who
    is not a rep (an import): the same outcome as registering them one after another (each sees
    the customers, owners, loads and round-robin cursors the ones before it left, in the file
    too), computed in memory from one reading of the registry, the reps and the cursors, and
    written with one statement per table."""
    assert SALES_REP not in principal.roles, "a rep's registrations claim customers: register_in"
    if not commands:  # every row of the chunk was rejected
        return []
    policy = policy or DEFAULT_POLICY
    ids = [uuid.uuid4() for _ in commands]
    stamps: list[datetime] = []
    for _ in commands:  # distinct registration times: the registry orders registrations by them
        now = datetime.now(UTC)
        stamps.append(now if not stamps or now > stamps[-1] else stamps[-1] + timedelta(microseconds=1))
    # Each key not registered yet is claimed for the first lead that has it, as register_in would.
    first: dict[MatchKey, int] = {}
    for i, (_, keys) in enumerate(commands):
        for key in keys:
            first.setdefault(key, i)
    registry = CustomerKeys(uow)
    entries = [KeyRegistration(k.kind.value, k.value, None, ids[i], None, stamps[i]) for k, i in first.items()]
    claimed = await registry.claim_many(entries)
    known: dict[MatchKey, Any] = {
        MatchKey(MatchKind(r.kind), r.value): r for r in await registry.registered(sorted(set(first) - claimed))
    }
    reps = SalesRepRepository(uow)
    candidates = await reps.lock_candidates_of({cmd.region for cmd, _ in commands})
    cursors = AssignmentCursors(uow)
    assignment = AssignmentRound(
        candidates,
        await reps.loads([r.id for r in candidates]),
        await cursors.get_many({rule_key(cmd.region, cmd.industry) for cmd, _ in commands}),
    )
    teams = {r.id: r.team_id for r in candidates}
    teams |= await reps.teams({r.owner_id for r in known.values() if r.owner_id is not None} - set(teams))
    new: list[Lead] = []
    transfers: list[tuple[MatchKey, str]] = []
    clocks: list[tuple[str, datetime, dict[str, Any]]] = []
    for i, (cmd, keys) in enumerate(commands):
        earlier = sorted((known[k] for k in keys if k in known), key=lambda r: (r.created_at, r.kind, r.value))
        added = [k for k in keys if k not in known]
        for key in added:
            known[key] = KeyRegistration(key.kind.value, key.value, None, ids[i], None, stamps[i])
        match = match_customer(earlier, claimant=None)
        owner_id, team, due = match.owner_id, None, None
        if owner_id is not None:
            team = teams.get(owner_id)
            assignment.count(owner_id)
        elif (chosen := assignment.choose(cmd.region, cmd.industry)) is not None:
            owner_id, team, due = chosen.id, chosen.team_id, stamps[i] + policy.first_contact
        if owner_id is not None:
            for key in added:  # the customer's new keys are its owner's
                known[key].owner_id = owner_id
                transfers.append((key, owner_id))
        lead = _new_lead(
            rules, cmd, keys, match, principal, lead_id=ids[i], now=stamps[i], owner_id=owner_id, team=team, due=due
        )
        new.append(lead)
        if due is not None:
            clocks.append(_first_contact_timer(lead, due))
    await registry.transfer_many(transfers)
    await LeadRepository(uow).add_many(new)
    await schedule_timers(uow, FIRST_CONTACT_TIMER, clocks)
    await cursors.set_many(assignment.moved)
    return new


async def get_import(import_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Any:
    async with uow:
        state = await LeadImports(uow).get(import_id)
    if state is None or not (principal.is_admin or state.created_by == principal.sub):
        raise NotFound(f"no lead import {import_id}")
    return state


async def import_errors(import_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> list[Any]:
    await get_import(import_id, principal, uow)
    async with uow:
        return await LeadImports(uow).errors(import_id)
