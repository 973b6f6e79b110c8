"""What the contracts service does with other services' events."""

from __future__ import annotations

from services.contracts import handlers
from shared.events import OpportunityWon
from shared.inbox import Subscription
from shared.uow import UnitOfWork


async def on_opportunity_won(event: OpportunityWon, uow: UnitOfWork) -> None:
    """A won opportunity drafts exactly one contract from its accepted quote (the runner commits;
    the inbox absorbs redeliveries, the unique opportunity_id a re-publication under a new id)."""
    await handlers.draft_from_won_opportunity(event, uow)


SUBSCRIPTIONS = [Subscription("contracts.opportunity_won", on_opportunity_won, events=(OpportunityWon,))]
