"""What the orders service does with other services' events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.orders.db import OrderRepository
from services.orders.domain import Order
from shared.events import ContractSigned
from shared.inbox import Subscription
from shared.policies import discount_authority
from shared.uow import UnitOfWork


async def on_contract_signed(event: ContractSigned, uow: UnitOfWork) -> None:
    """A signed contract enters exactly one order, at the approval stage (the runner commits)."""
    orders = OrderRepository(uow)
    if await orders.exists_for_contract(event.contract_id):
        return  # same contract signed event published twice under another id: state guard
    now = datetime.now(UTC)
    order = Order.from_signed_contract(
        event, order_id=uuid.uuid4(), number=await orders.next_number(now), now=now, policy=discount_authority()
    )
    await orders.add(order)


SUBSCRIPTIONS = [Subscription("orders.contract_signed", on_contract_signed, events=(ContractSigned,))]
