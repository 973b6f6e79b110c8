"""What the leads service does with other services' events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.leads import handlers
from services.leads.config import assignment_policy, get_settings, load_grading_rules
from services.leads.db import AccountRepository, CustomerEvents, CustomerKeys, SalesRepRepository, SignedContracts
from services.leads.domain import Account, InvalidIdentifier, MatchKey, MatchKind, normalize_company_name
from services.leads.domain.timeline import CustomerEvent, customer_event
from shared.events import ContractSigned, ContractTerminated, Event, OrderDelivered, SurveyCompleted, TicketOpened
from shared.inbox import Subscription
from shared.uow import UnitOfWork


async def on_contract_signed(event: ContractSigned, uow: UnitOfWork) -> None:
    """The customer's account becomes *signed* (created if the CRM did not know it yet).

    A new account's company name becomes a customer key, so later leads of the same company are
    linked to it (and stay with its owner unless a rep had registered the company first).
    """
    accounts = AccountRepository(uow)
    account = await accounts.by_customer_id(event.customer_id)
    if account is None:
        account = Account(
            id=uuid.uuid4(),
            customer_id=event.customer_id,
            name=event.customer_name,
            owner_id=event.owner_id,
            region=event.region,
            created_at=datetime.now(UTC),
        )
        # Its owner's team (who else sees it) and its first follow-up, a month out (normal tier).
        account.team = await SalesRepRepository(uow).team_of(event.owner_id)
        account.next_follow_up_at = account.created_at + account.tier.follow_up_interval
        account.contract_signed(event.contract_number)
        await accounts.add(account)
        await handlers.schedule_follow_up(uow, account)
        try:
            key = MatchKey(MatchKind.NAME, normalize_company_name(event.customer_name))
        except InvalidIdentifier:
            return  # a name that is only a legal form matches nothing
        await CustomerKeys(uow).link_account(
            key, account_id=account.id, owner_id=account.owner_id, now=account.created_at
        )
    else:
        account.contract_signed(event.contract_number)
        await accounts.save(account)


async def on_contract_signed_for_targets(event: ContractSigned, uow: UnitOfWork) -> None:
    """The owner signed ``total_amount``: it counts towards their (and their team's) targets."""
    await SignedContracts(uow).record(
        {
            "contract_id": event.contract_id,
            "contract_number": event.contract_number,
            "customer_id": event.customer_id,
            "owner_id": event.owner_id,
            "currency": event.currency,
            "total_amount": event.total_amount,
            "signed_at": event.signed_at,
        }
    )


async def on_customer_event(event: Event, uow: UnitOfWork) -> None:
    """Contract signed, order delivered, ticket opened, survey completed: on the customer's timeline."""
    assert uow.message is not None
    await CustomerEvents(uow).record(uow.message.id, customer_event(event))


async def on_contract_terminated(event: ContractTerminated, uow: UnitOfWork) -> None:
    """A terminated contract on the customer's timeline, once per event (keyed by the event id).

    The account keeps its classification: whether the customer is still *signed* (other
    contracts) or goes back to tracking is the owner's call, made through PATCH /v1/accounts.
    """
    assert uow.message is not None
    entry = CustomerEvent(
        event.customer_id,
        "contract.terminated",
        event.terminated_at,
        f"Contract {event.contract_number} terminated: {event.reason}",
        event.contract_number,
        {
            "contract_id": str(event.contract_id),
            "previous_status": event.previous_status,
            "terminated_by": event.terminated_by,
            "reason": event.reason,
        },
    )
    await CustomerEvents(uow).record(uow.message.id, entry)


SUBSCRIPTIONS = [
    Subscription("leads.contract_signed", on_contract_signed, events=(ContractSigned,)),
    Subscription("leads.contract_signed_targets", on_contract_signed_for_targets, events=(ContractSigned,)),
    Subscription(
        "leads.customer_timeline",
        on_customer_event,
        events=(ContractSigned, OrderDelivered, TicketOpened, SurveyCompleted),
    ),
    Subscription("leads.contract_terminated", on_contract_terminated, events=(ContractTerminated,)),
]


async def _first_contact_deadline(payload: dict, uow: UnitOfWork) -> None:
    await handlers.first_contact_deadline(payload, uow, policy=assignment_policy(get_settings()))


async def _import_chunk(payload: dict, uow: UnitOfWork) -> None:
    settings = get_settings()
    await handlers.import_chunk(
        payload,
        uow,
        rules=load_grading_rules(settings.grading_rules_path),
        phone_region=settings.phone_region,
        policy=assignment_policy(settings),
    )


# Durable timers: each handler runs in the transaction that marks its timer fired.
TIMERS = {
    handlers.FOLLOW_UP_TIMER: handlers.account_follow_up_due,
    handlers.FIRST_CONTACT_TIMER: _first_contact_deadline,
    handlers.ACCOUNT_CONTACT_TIMER: handlers.account_contact_deadline,
    handlers.ACTIVITY_FOLLOW_UP_TIMER: handlers.follow_up_due,
    handlers.IMPORT_TIMER: _import_chunk,
}
