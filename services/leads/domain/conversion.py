"""Converting a qualified lead into an account, a contact and an opportunity, in one step.

A lead is qualified when its grade is A or B (the grading rules judged budget, timeframe and
need fit good enough); a C lead is a 409. A lead that matched an existing account converts
into that account (a new contact and opportunity on it) instead of a duplicate customer.
The lead records ``lead.converted``; converting it again is refused by the handler, which
answers with the first conversion instead (double submission).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.leads.domain.account import Account, AccountTier
from services.leads.domain.grading import Grade
from services.leads.domain.lead import Lead
from services.leads.domain.opportunity import Opportunity
from shared.domain import InvalidTransition
from shared.events import ContactInfo, LeadConverted

QUALIFIED_GRADES = frozenset({Grade.A, Grade.B})


@dataclass
class Contact:
    """A person at an account."""

    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    created_at: datetime
    title: str | None = None
    phone: str | None = None
    email: str | None = None

    @property
    def info(self) -> ContactInfo:
        return ContactInfo(name=self.name, email=self.email, phone=self.phone)


@dataclass(frozen=True, slots=True)
class ConversionRequest:
    account_name: str | None
    contact_name: str | None
    contact_title: str | None
    opportunity_name: str | None
    amount: Decimal | None
    currency: str | None
    expected_close_date: date | None
    tier: AccountTier


@dataclass(frozen=True, slots=True)
class Conversion:
    account: Account
    account_is_new: bool
    contact: Contact
    opportunity: Opportunity


def convert(
    lead: Lead,
    request: ConversionRequest,
    *,
    existing_account: Account | None,
    by: str,
    team: str | None,
    region: str | None,
    now: datetime,
) -> Conversion:
    """``team`` and ``region`` stamp a new account (hence who else sees it); the lead's region wins."""
    if lead.owner_id is None:
        raise InvalidTransition("a lead in the public pool converts once a rep owns it")
    if lead.grade not in QUALIFIED_GRADES:
        raise InvalidTransition(f"only a qualified (A or B) lead converts; this one is {lead.grade.value}")
    name = request.account_name or lead.company_name or lead.contact_name
    contact_name = request.contact_name or lead.contact_name or name
    if not name or not contact_name:
        raise InvalidTransition("the lead has neither a company nor a contact name: give account_name")
    account = existing_account
    if account is None:
        account_id = uuid.uuid4()
        account = Account(
            id=account_id,
            customer_id=str(account_id),  # what contracts and orders key the customer by
            name=name,
            owner_id=lead.owner_id,
            created_at=now,
            region=lead.region or region,
            team=team,
            tier=request.tier,
            lead_id=lead.id,
            next_follow_up_at=now + request.tier.follow_up_interval,
        )
    contact = Contact(
        id=uuid.uuid4(),
        account_id=account.id,
        name=contact_name,
        title=request.contact_title,
        phone=lead.phone,
        email=lead.email,
        created_at=now,
    )
    currency = request.currency or lead.currency
    amount = request.amount if request.amount is not None else (lead.budget or Decimal(0))
    opportunity = Opportunity(
        id=uuid.uuid4(),
        account_id=account.id,
        contact_id=contact.id,
        lead_id=lead.id,
        name=request.opportunity_name or f"{name}: {lead.source.value}",
        owner_id=account.owner_id,
        amount=amount,
        currency=currency,
        expected_close_date=request.expected_close_date,
        source=lead.source.value,
        team=account.team,
        region=account.region,
        created_at=now,
    )
    lead.record(
        LeadConverted(
            lead_id=lead.id,
            account_id=account.id,
            customer_id=account.customer_id,
            customer_name=account.name,
            contact_id=contact.id,
            contact=contact.info,
            opportunity_id=opportunity.id,
            owner_id=account.owner_id,
            converted_by=by,
            region=account.region,
            team=account.team,
            currency=currency,
            amount=amount,
            converted_at=now,
        )
    )
    return Conversion(
        account=account, account_is_new=existing_account is None, contact=contact, opportunity=opportunity
    )
