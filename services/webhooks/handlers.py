"""Webhook commands and queries. Each opens the unit of work; changes end with an explicit commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, update

from services.webhooks import db
from services.webhooks.config import WebhooksSettings
from services.webhooks.crypto import generate_secret, secret_box
from services.webhooks.db import SubscriptionRepository, deliveries
from services.webhooks.domain import Subscription, check_patterns
from services.webhooks.urlguard import UrlRefused, check_receiver_url
from shared.auth import Principal
from shared.domain import DomainError
from shared.events import EVENT_TYPES, WebhookSubscriptionPinged, make_envelope
from shared.pagination import PageParams
from shared.uow import UnitOfWork


class ReceiverUrlRefused(DomainError):
    title = "Receiver URL not allowed"
    slug = "webhook-url-refused"


class SubscriptionInactive(DomainError):
    status = 409
    title = "Subscription not active"
    slug = "webhook-subscription-inactive"


def _now() -> datetime:
    return datetime.now(UTC)


async def _checked_url(url: str, settings: WebhooksSettings) -> str:
    try:
        return await check_receiver_url(url, http_allowed=settings.http_allowed, allowed=settings.allowed_ip_networks)
    except UrlRefused as exc:
        raise ReceiverUrlRefused(str(exc)) from None


# -- subscriptions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateSubscription:
    url: str
    event_types: tuple[str, ...]
    description: str | None = None
    active: bool = True


async def create_subscription(
    cmd: CreateSubscription, principal: Principal, uow: UnitOfWork, settings: WebhooksSettings
) -> tuple[Subscription, str]:
    """The new subscription and its secret in plain text (shown to the caller once, stored encrypted)."""
    url = await _checked_url(cmd.url, settings)
    patterns = check_patterns(cmd.event_types, EVENT_TYPES)
    secret = generate_secret()
    now = _now()
    subscription = Subscription(
        id=uuid.uuid4(),
        owner_id=principal.sub,
        url=url,
        event_types=patterns,
        secret=secret_box(tuple(settings.secret_keys)).seal(secret),
        created_at=now,
        updated_at=now,
        description=cmd.description,
        active=cmd.active,
        version=1,
    )
    async with uow:
        await SubscriptionRepository(uow).add(subscription)
        await uow.commit()
    return subscription, secret


async def get_subscription(subscription_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Subscription:
    async with uow:
        return await SubscriptionRepository(uow).get_visible(subscription_id, principal)


async def list_subscriptions(
    principal: Principal, uow: UnitOfWork, page: PageParams, *, active: bool | None = None
) -> tuple[list[Subscription], str | None]:
    async with uow:
        return await SubscriptionRepository(uow).list(principal, page, filters={"active": active})


async def update_subscription(
    subscription_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    settings: WebhooksSettings,
    changes: dict[str, Any],
    *,
    if_match: int | None = None,
) -> Subscription:
    """``changes``: any of url, event_types, description (None clears it), active.

    Deactivating pauses the subscription's pending deliveries; activating (also after it was
    disabled) clears its failure record and resumes them.
    """
    url = await _checked_url(changes["url"], settings) if changes.get("url") is not None else None
    patterns = check_patterns(changes["event_types"], EVENT_TYPES) if changes.get("event_types") is not None else None
    now = _now()
    async with uow:
        repo = SubscriptionRepository(uow)
        subscription = await repo.get_for_change(subscription_id, principal, if_match=if_match)
        toggled = subscription.change(
            now,
            url=url,
            event_types=patterns,
            description=changes.get("description"),
            clear_description="description" in changes and changes["description"] is None,
            active=changes.get("active"),
        )
        await repo.save(subscription)
        if toggled and subscription.active:
            await db.resume_deliveries(uow, subscription.id, now)
        elif toggled:
            await db.pause_deliveries(uow, subscription.id)
        await uow.commit()
    return subscription


async def delete_subscription(
    subscription_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> None:
    """Deletes the subscription with its deliveries and their log."""
    async with uow:
        repo = SubscriptionRepository(uow)
        await repo.get_for_change(subscription_id, principal, if_match=if_match)
        await repo.delete(subscription_id)
        await uow.commit()


async def rotate_secret(
    subscription_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    settings: WebhooksSettings,
    *,
    overlap: timedelta,
    if_match: int | None = None,
) -> tuple[Subscription, str]:
    secret = generate_secret()
    async with uow:
        repo = SubscriptionRepository(uow)
        subscription = await repo.get_for_change(subscription_id, principal, if_match=if_match)
        subscription.rotate_secret(secret_box(tuple(settings.secret_keys)).seal(secret), _now(), overlap)
        await repo.save(subscription)
        await uow.commit()
    return subscription, secret


# -- deliveries ------------------------------------------------------------------------------


async def ping(subscription_id: uuid.UUID, principal: Principal, uow: UnitOfWork, settings: WebhooksSettings):
    """A ``webhook_subscription.pinged.v1`` delivery to this subscription only: one attempt, logged like any
    other, and it does not count towards the endpoint's health. Works while inactive."""
    now = _now()
    async with uow:
        subscription = await SubscriptionRepository(uow).get_visible(subscription_id, principal)
        pinged = WebhookSubscriptionPinged(subscription_id=subscription.id)
        envelope = make_envelope(pinged, source=settings.source, subject=str(subscription.id))
        delivery_id = uuid.uuid4()
        await uow.execute(
            insert(deliveries).values(
                id=delivery_id,
                subscription_id=subscription.id,
                kind=db.PING,
                event_id=envelope.id,
                event_type=envelope.type,
                body=envelope.to_json(),
                status=db.PENDING,
                next_attempt_at=now,
                created_at=now,
            )
        )
        db.notify_dispatchers(uow)
        row = await db.get_delivery(uow, delivery_id, principal)
        await uow.commit()
    return row


async def get_delivery(delivery_id: uuid.UUID, principal: Principal, uow: UnitOfWork):
    async with uow:
        return await db.get_delivery(uow, delivery_id, principal)


async def list_deliveries(principal: Principal, uow: UnitOfWork, page: PageParams, **filters: Any):
    async with uow:
        return await db.list_deliveries(uow, principal, page, **filters)


async def list_attempts(delivery_id: uuid.UUID, principal: Principal, uow: UnitOfWork, page: PageParams):
    async with uow:
        await db.get_delivery(uow, delivery_id, principal)  # 404 unless visible
        return await db.list_attempts(uow, delivery_id, page)


async def replay_delivery(delivery_id: uuid.UUID, principal: Principal, uow: UnitOfWork):
    """Send it again from the start of the schedule, under the same ``webhook-id``."""
    now = _now()
    async with uow:
        row = await db.get_delivery(uow, delivery_id, principal, for_update=True)
        if row.kind == db.EVENT:
            _require_active(await SubscriptionRepository(uow).get(row.subscription_id, None))
        await uow.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(db.replay_values(now)))
        db.notify_dispatchers(uow)
        row = await db.get_delivery(uow, delivery_id, principal)
        await uow.commit()
    return row


async def replay_range(
    subscription_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    created_from: datetime,
    created_before: datetime | None,
    status: str | None = None,
) -> int:
    """Replay every event delivery of the subscription created in [from, before); returns how many."""
    now = _now()
    async with uow:
        _require_active(await SubscriptionRepository(uow).get_visible(subscription_id, principal))
        conditions = [
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.kind == db.EVENT,
            deliveries.c.created_at >= created_from,
        ]
        if created_before is not None:
            conditions.append(deliveries.c.created_at < created_before)
        if status is not None:
            conditions.append(deliveries.c.status == status)
        result = await uow.execute(
            update(deliveries).where(db.in_lock_order(*conditions)).values(db.replay_values(now))
        )
        db.notify_dispatchers(uow)
        await uow.commit()
    return result.rowcount


def _require_active(subscription: Subscription | None) -> None:
    if subscription is None or not subscription.active:
        raise SubscriptionInactive("activate the subscription (PATCH active=true) before replaying to it")


# -- event history ---------------------------------------------------------------------------


class UnknownEvent(DomainError):
    status = 400
    title = "Unknown event"
    slug = "unknown-event"


async def list_events(uow: UnitOfWork, page: PageParams, *, after_event: uuid.UUID | None, event_type: str | None):
    async with uow:
        if after_event is not None and page.cursor is None:
            cursor = await db.event_cursor(uow, after_event)
            if cursor is None:
                raise UnknownEvent(f"event {after_event} is not in the history (never seen, or past its retention)")
            page = PageParams(limit=page.limit, cursor=cursor)
        return await db.list_events(uow, page, event_type=event_type)
