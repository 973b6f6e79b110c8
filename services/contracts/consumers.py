"""What the contracts service does with other services' events.

Nothing yet: consuming ``opportunity.won`` (drafting from the accepted quote) comes with the
contracts issue.
"""

from shared.inbox import Subscription

SUBSCRIPTIONS: list[Subscription] = []
