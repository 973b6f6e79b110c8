"""What the orders service does with other services' events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.orders.db import OrderRepository, TerminatedContracts
from services.orders.domain import Order
from shared.events import ContractSigned, ContractTerminated
from shared.inbox import Subscription
from shared.policies import discount_authority
from shared.uow import UnitOfWork


async def on_contract_signed(event: ContractSigned, uow: UnitOfWork) -> None:
    """A signed contract enters exactly one order, at the approval stage (the runner commits)."""
    orders, terminated = OrderRepository(uow), TerminatedContracts(uow)
    await terminated.lock_contract(event.contract_id)
    if await terminated.signing_done_or_void(event.contract_id):
        # The same signing published again under another id (state guard), or its termination
        # arrived first: nothing to fulfil.
        return
    now = datetime.now(UTC)
    order = Order.from_signed_contract(
        event, order_id=uuid.uuid4(), number=await orders.next_number(now), now=now, policy=discount_authority()
    )
    await orders.add(order)


async def on_contract_terminated(event: ContractTerminated, uow: UnitOfWork) -> None:
    """A terminated contract's order is cancelled (``order.cancelled``) unless goods have shipped.

    The termination is remembered, in case the contract's signing is delivered after it.
    """
    orders, terminated = OrderRepository(uow), TerminatedContracts(uow)
    await terminated.lock_contract(event.contract_id)
    await terminated.record(event.contract_id, event.contract_number, event.terminated_at)
    order = await orders.for_contract(event.contract_id)
    if order is not None and order.contract_terminated(event.contract_number, event.reason, now=datetime.now(UTC)):
        await orders.save(order)


SUBSCRIPTIONS = [
    Subscription("orders.contract_signed", on_contract_signed, events=(ContractSigned,)),
    Subscription("orders.contract_terminated", on_contract_terminated, events=(ContractTerminated,)),
]
