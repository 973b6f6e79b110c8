"""HTTP routes of the webhooks service: subscriptions, deliveries (log, replay, ping) and the event history.

Every route needs the role ``integration`` (ERP machine clients) or ``admin``. An integration
client sees and changes only the subscriptions it created (and their deliveries); ``admin``
sees all. Another client's subscription is a 404.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from starlette.responses import Response as StarletteResponse

from services.webhooks import handlers
from services.webhooks.api.schemas import (
    AttemptRead,
    DeliveryRead,
    DeliveryStatus,
    EventRead,
    Instant,
    ReplayRange,
    ReplayResult,
    RotateSecret,
    SecretRotated,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionRead,
    SubscriptionUpdate,
)
from services.webhooks.config import WebhooksSettings
from services.webhooks.crypto import secret_box
from services.webhooks.domain import Subscription
from shared.api import SafeStr
from shared.auth import ADMIN, INTEGRATION, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import MAX_CURSOR_LENGTH, Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

Integrator = Annotated[Principal, Depends(require_roles(ADMIN, INTEGRATION))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
TypePattern = Annotated[
    SafeStr | None,
    Query(max_length=200, description="An exact type (`order.created.v1`), a prefix (`order.*`) or `*`"),
]


def get_settings(request: Request) -> WebhooksSettings:
    return request.app.state.settings


Settings = Annotated[WebhooksSettings, Depends(get_settings)]

# -- secrets in responses --------------------------------------------------------------------

_SEALED = "sealed:"


class SealedSecretRoute(IdempotentRoute):
    """Responses that carry a new secret leave the endpoint with it *encrypted*
    (``"secret": "sealed:<ciphertext>"``); this route opens it on the way out.

    The idempotency layer sits between the two, so the response it keeps for retries (24 h)
    holds ciphertext only, while a client retrying with the same ``Idempotency-Key`` still
    gets the secret it may have missed.
    """

    def get_route_handler(self) -> Callable[[Request], Awaitable[StarletteResponse]]:
        handler = super().get_route_handler()

        async def open_sealed_secret(request: Request) -> StarletteResponse:
            response = await handler(request)
            body = getattr(response, "body", b"")
            if b'"secret":"sealed:' not in body:
                return response
            data = json.loads(body)
            data["secret"] = secret_box(tuple(request.app.state.settings.secret_keys)).open(
                data["secret"][len(_SEALED) :]
            )
            opened = StarletteResponse(content=json.dumps(data).encode(), status_code=response.status_code)
            opened.raw_headers.extend(h for h in response.raw_headers if h[0].lower() != b"content-length")
            return opened

        return open_sealed_secret


def _sealed(secret: str, settings: WebhooksSettings) -> str:
    return _SEALED + secret_box(tuple(settings.secret_keys)).seal(secret)


# -- subscriptions ---------------------------------------------------------------------------

subscriptions_router = APIRouter(
    prefix="/v1/webhook-subscriptions", tags=["webhook subscriptions"], route_class=SealedSecretRoute
)


def _read(subscription: Subscription) -> SubscriptionRead:
    return SubscriptionRead.model_validate(subscription)


@subscriptions_router.post(
    "", status_code=201, response_model=SubscriptionCreated, responses=problem_responses(400, 401, 403, 409, 422)
)
async def create_subscription(
    body: SubscriptionCreate, response: Response, principal: Integrator, uow: Uow, settings: Settings
) -> SubscriptionCreated:
    """Subscribe a URL to event types. The response carries the signing secret: the only time it is shown."""
    subscription, secret = await handlers.create_subscription(
        handlers.CreateSubscription(
            url=body.url, event_types=tuple(body.event_types), description=body.description, active=body.active
        ),
        principal,
        uow,
        settings,
    )
    response.headers["Location"] = f"/v1/webhook-subscriptions/{subscription.id}"
    set_etag(response, subscription.version)
    return SubscriptionCreated.model_validate({**_read(subscription).model_dump(), "secret": _sealed(secret, settings)})


@subscriptions_router.get("", response_model=Page[SubscriptionRead], responses=problem_responses(400, 401, 403))
async def list_subscriptions(
    request: Request,
    response: Response,
    principal: Integrator,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    active: Annotated[bool | None, Query(description="Only active (true) or inactive/disabled (false) ones")] = None,
) -> Page[SubscriptionRead]:
    items, next_cursor = await handlers.list_subscriptions(principal, uow, page, active=active)
    return paginated(request, response, [_read(s) for s in items], next_cursor)


@subscriptions_router.get(
    "/{subscription_id}", response_model=SubscriptionRead, responses=problem_responses(401, 403, 404)
)
async def get_subscription(
    subscription_id: uuid.UUID, response: Response, principal: Integrator, uow: Uow
) -> SubscriptionRead:
    subscription = await handlers.get_subscription(subscription_id, principal, uow)
    set_etag(response, subscription.version)
    return _read(subscription)


@subscriptions_router.patch(
    "/{subscription_id}", response_model=SubscriptionRead, responses=problem_responses(400, 401, 403, 404, 412, 422)
)
async def update_subscription(
    subscription_id: uuid.UUID,
    body: SubscriptionUpdate,
    request: Request,
    response: Response,
    principal: Integrator,
    uow: Uow,
    settings: Settings,
) -> SubscriptionRead:
    """Change the URL, patterns, description or `active`. Honours `If-Match`."""
    changes = body.model_dump(exclude_unset=True)
    for field in ("url", "event_types", "active"):
        if field in changes and changes[field] is None:
            del changes[field]  # null means "unchanged" for fields that cannot be empty
    subscription = await handlers.update_subscription(
        subscription_id, principal, uow, settings, changes, if_match=expected_version(request)
    )
    set_etag(response, subscription.version)
    return _read(subscription)


@subscriptions_router.delete(
    "/{subscription_id}", status_code=204, response_class=Response, responses=problem_responses(401, 403, 404, 412)
)
async def delete_subscription(
    subscription_id: uuid.UUID, request: Request, principal: Integrator, uow: Uow
) -> Response:
    """Delete the subscription, its deliveries and their log."""
    await handlers.delete_subscription(subscription_id, principal, uow, if_match=expected_version(request))
    return Response(status_code=204)


@subscriptions_router.post(
    "/{subscription_id}/rotate-secret",
    response_model=SecretRotated,
    responses=problem_responses(400, 401, 403, 404, 409, 412, 422),
)
async def rotate_secret(
    subscription_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Integrator,
    uow: Uow,
    settings: Settings,
    body: Annotated[RotateSecret | None, Body()] = None,
) -> SecretRotated:
    """A new secret, shown once. During the overlap every request carries two signatures
    (`v1,<new> v1,<old>`), so the receiver can switch to the new secret at its own pace."""
    overlap = timedelta(seconds=(body or RotateSecret()).overlap_seconds)
    subscription, secret = await handlers.rotate_secret(
        subscription_id, principal, uow, settings, overlap=overlap, if_match=expected_version(request)
    )
    set_etag(response, subscription.version)
    return SecretRotated(
        subscription_id=subscription.id,
        secret=_sealed(secret, settings),
        previous_secret_expires_at=subscription.previous_secret_expires_at,
        version=subscription.version,
    )


@subscriptions_router.post(
    "/{subscription_id}/ping",
    status_code=202,
    response_model=DeliveryRead,
    responses=problem_responses(401, 403, 404, 409),
)
async def ping(
    subscription_id: uuid.UUID, response: Response, principal: Integrator, uow: Uow, settings: Settings
) -> DeliveryRead:
    """Send a signed `webhook_subscription.pinged.v1` to the endpoint now: one attempt, whose result
    the delivery (at `Location`) shows. Works on inactive and disabled subscriptions too."""
    row = await handlers.ping(subscription_id, principal, uow, settings)
    response.headers["Location"] = f"/v1/webhook-deliveries/{row.id}"
    return DeliveryRead.model_validate(row)


@subscriptions_router.post(
    "/{subscription_id}/replay",
    status_code=202,
    response_model=ReplayResult,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def replay_range(subscription_id: uuid.UUID, body: ReplayRange, principal: Integrator, uow: Uow) -> ReplayResult:
    """Send every delivery of this subscription created in the range again, each under its original `webhook-id`."""
    count = await handlers.replay_range(
        subscription_id,
        principal,
        uow,
        created_from=body.created_from,
        created_before=body.created_before,
        status=body.status,
    )
    return ReplayResult(replayed=count)


# -- deliveries ------------------------------------------------------------------------------

deliveries_router = APIRouter(prefix="/v1/webhook-deliveries", tags=["webhook deliveries"], route_class=IdempotentRoute)


@deliveries_router.get("", response_model=Page[DeliveryRead], responses=problem_responses(400, 401, 403))
async def list_deliveries(
    request: Request,
    response: Response,
    principal: Integrator,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    subscription_id: Annotated[uuid.UUID | None, Query(description="Deliveries of this subscription")] = None,
    event_id: Annotated[uuid.UUID | None, Query(description="Deliveries of this event")] = None,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    event_type: TypePattern = None,
    created_from: Annotated[Instant | None, Query(description="Created at or after (with offset)")] = None,
    created_before: Annotated[Instant | None, Query(description="Created before")] = None,
) -> Page[DeliveryRead]:
    """The delivery log, oldest first: per subscription (`subscription_id`), per event (`event_id`), or both."""
    rows, next_cursor = await handlers.list_deliveries(
        principal,
        uow,
        page,
        subscription_id=subscription_id,
        event_id=event_id,
        status=status,
        event_type=event_type,
        created_from=created_from,
        created_before=created_before,
    )
    return paginated(request, response, [DeliveryRead.model_validate(r) for r in rows], next_cursor)


@deliveries_router.get("/{delivery_id}", response_model=DeliveryRead, responses=problem_responses(401, 403, 404))
async def get_delivery(delivery_id: uuid.UUID, principal: Integrator, uow: Uow) -> DeliveryRead:
    return DeliveryRead.model_validate(await handlers.get_delivery(delivery_id, principal, uow))


@deliveries_router.get(
    "/{delivery_id}/attempts", response_model=Page[AttemptRead], responses=problem_responses(400, 401, 403, 404)
)
async def list_attempts(
    delivery_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Integrator,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[AttemptRead]:
    """Every attempt: time, URL, status code, latency, error class and the first 2 KB of the response."""
    rows, next_cursor = await handlers.list_attempts(delivery_id, principal, uow, page)
    return paginated(request, response, [AttemptRead.model_validate(r) for r in rows], next_cursor)


@deliveries_router.post(
    "/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryRead,
    responses=problem_responses(401, 403, 404, 409),
)
async def replay_delivery(delivery_id: uuid.UUID, principal: Integrator, uow: Uow) -> DeliveryRead:
    """Send it again now, with the original `webhook-id`, from the start of the retry schedule."""
    return DeliveryRead.model_validate(await handlers.replay_delivery(delivery_id, principal, uow))


# -- event history ---------------------------------------------------------------------------

events_router = APIRouter(prefix="/v1/events", tags=["event history"])


@events_router.get("", response_model=Page[EventRead], responses=problem_responses(400, 401, 403))
async def event_history(
    request: Request,
    response: Response,
    principal: Integrator,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    type: TypePattern = None,
    after: Annotated[
        SafeStr | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="Resume after this point: a `next_cursor`, or the id of the last event you processed",
        ),
    ] = None,
) -> Page[EventRead]:
    """Every event published, in commit order, kept for `event_retention_days` (90 by default).

    An ERP that was offline catches up by following `next_cursor` (or `Link: rel="next"`) from
    its last cursor, or from the id of the last event it processed (`after=<event id>`). The
    last page's `next_cursor` is null; poll again later with the last cursor you had.
    """
    after_event: uuid.UUID | None = None
    if after is not None and page.cursor is None:
        try:
            after_event = uuid.UUID(after)
        except ValueError:
            page = PageParams(limit=page.limit, cursor=after)
    rows, next_cursor = await handlers.list_events(uow, page, after_event=after_event, event_type=type)
    return paginated(request, response, [EventRead.model_validate(r._mapping) for r in rows], next_cursor)


routers = [subscriptions_router, deliveries_router, events_router]
