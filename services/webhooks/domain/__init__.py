"""Webhook subscriptions, deliveries and attempts arrive with the webhooks issue.

For now the service keeps the history of every event on the bus (``db.event_history``),
which ERP systems will catch up from.
"""
