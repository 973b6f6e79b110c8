"""What the leads service does with other services' events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.leads.db import AccountRepository
from services.leads.domain import Account
from shared.events import ContractSigned
from shared.inbox import Subscription
from shared.uow import UnitOfWork


async def on_contract_signed(event: ContractSigned, uow: UnitOfWork) -> None:
    """The customer's account becomes *signed* (created if the CRM did not know it yet)."""
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
        account.contract_signed(event.contract_number)
        await accounts.add(account)
    else:
        account.contract_signed(event.contract_number)
        await accounts.save(account)


SUBSCRIPTIONS = [Subscription("leads.contract_signed", on_contract_signed, events=(ContractSigned,))]
