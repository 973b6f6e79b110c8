"""ERP callbacks (``/v1/erp/...``), signed with Standard Webhooks.

Two checks, like every endpoint here: a bearer token of the ERP's machine client (role
``integration``), and the Standard Webhooks signature, an HMAC-SHA256 over
``webhook-id.webhook-timestamp.body`` verified by the ``standardwebhooks`` library (±5 minutes).
A bad, missing or stale signature is a 401 before anything is parsed or written. The ``webhook-id`` is
recorded in the same transaction as the effect, so a replayed callback answers 200 with
``applied: false`` and changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.orders import handlers
from services.orders.api.schemas import (
    ErpAck,
    ErpCreditLimitChanged,
    ErpInvoiceIssued,
    ErpPaymentReceived,
    ErpShipmentDelivered,
    ErpShipmentDispatched,
)
from shared.api import ApiModel
from shared.auth import INTEGRATION, Principal, require_roles
from shared.domain import DomainError
from shared.errors import Problem, problem_responses

router = APIRouter(prefix="/v1/erp", tags=["ERP callbacks"])
Erp = Annotated[Principal, Depends(require_roles(INTEGRATION))]

M = TypeVar("M", bound=ApiModel)
PROBLEMS = problem_responses(400, 401, 404, 409, 422)


def _documented(model: type[ApiModel]) -> dict:
    """OpenAPI request body for a route that reads its raw body itself (to verify the signature first).

    Nested models are referenced as components; every one used here is also a body elsewhere.
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


MAX_WEBHOOK_ID = 255


async def _verified(request: Request, model: type[M]) -> tuple[str, M]:
    """The webhook id and the parsed body of a callback whose signature checks out."""
    body = await request.body()
    try:
        Webhook(request.app.state.settings.erp_webhook_secret).verify(body, dict(request.headers), json_parse=False)
    except (WebhookVerificationError, ValueError) as exc:
        raise Problem(
            401,
            "Unauthorized",
            "The webhook signature is missing, invalid or outside the 5-minute tolerance.",
            slug="bad-webhook-signature",
        ) from exc
    webhook_id = request.headers["webhook-id"]
    if len(webhook_id) > MAX_WEBHOOK_ID or not webhook_id.isprintable():
        raise Problem(
            400, "Invalid webhook-id", "webhook-id must be 1-255 printable characters.", slug="bad-webhook-id"
        )
    try:
        return webhook_id, model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None


def _currency_matches(order, currency: str) -> None:
    if order.currency != currency:
        raise DomainError(f"the order is in {order.currency}, the payment in {currency}")


@router.post(
    "/shipments/dispatched", response_model=ErpAck, responses=PROBLEMS, openapi_extra=_documented(ErpShipmentDispatched)
)
async def shipment_dispatched(request: Request, _: Erp) -> ErpAck:
    """Body: `ErpShipmentDispatched`. The warehouse shipped a released shipment (`order.shipped`)."""
    webhook_id, body = await _verified(request, ErpShipmentDispatched)
    serials = {line.line_no: tuple(line.serial_numbers) for line in body.lines}
    expected = body.expected_delivery_date.isoformat() if body.expected_delivery_date else None
    order = await handlers.erp_callback(
        "shipment_dispatched",
        webhook_id,
        body.order_number,
        request.app.state.runtime.uow(),
        lambda o, now: o.ship_shipment(
            body.shipment_id,
            now=now,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
            serial_numbers=serials,
            expected_delivery_date=expected,
        ),
    )
    return ErpAck(webhook_id=webhook_id, applied=order is not None)


@router.post(
    "/shipments/delivered", response_model=ErpAck, responses=PROBLEMS, openapi_extra=_documented(ErpShipmentDelivered)
)
async def shipment_delivered(request: Request, _: Erp) -> ErpAck:
    """Body: `ErpShipmentDelivered`. The last shipment delivered emits `order.delivered` once."""
    webhook_id, body = await _verified(request, ErpShipmentDelivered)
    order = await handlers.erp_callback(
        "shipment_delivered",
        webhook_id,
        body.order_number,
        request.app.state.runtime.uow(),
        lambda o, now: o.deliver_shipment(body.shipment_id, now),
    )
    return ErpAck(webhook_id=webhook_id, applied=order is not None)


@router.post("/payments", response_model=ErpAck, responses=PROBLEMS, openapi_extra=_documented(ErpPaymentReceived))
async def payment_received(request: Request, _: Erp) -> ErpAck:
    """Body: `ErpPaymentReceived` (`payment.received`); may release a prepayment or credit hold."""
    webhook_id, body = await _verified(request, ErpPaymentReceived)

    def receive(order, now) -> None:
        _currency_matches(order, body.currency)
        order.receive_payment(body.payment_id, Decimal(body.amount), now=now, reference=body.reference)

    order = await handlers.erp_callback(
        "payment_received", webhook_id, body.order_number, request.app.state.runtime.uow(), receive
    )
    return ErpAck(webhook_id=webhook_id, applied=order is not None)


@router.post(
    "/credit-limits", response_model=ErpAck, responses=PROBLEMS, openapi_extra=_documented(ErpCreditLimitChanged)
)
async def credit_limit_changed(request: Request, _: Erp) -> ErpAck:
    """Body: `ErpCreditLimitChanged`. Held orders of the customer that now fit go back to finance."""
    webhook_id, body = await _verified(request, ErpCreditLimitChanged)
    applied = await handlers.set_credit_limit(
        body.customer_id,
        Decimal(body.credit_limit),
        body.currency,
        "erp",
        request.app.state.runtime.uow(),
        webhook_id=webhook_id,
    )
    return ErpAck(webhook_id=webhook_id, applied=applied)


@router.post("/invoices", response_model=ErpAck, responses=PROBLEMS, openapi_extra=_documented(ErpInvoiceIssued))
async def invoice_issued(request: Request, _: Erp) -> ErpAck:
    """Body: `ErpInvoiceIssued` (`invoice.issued`)."""
    webhook_id, body = await _verified(request, ErpInvoiceIssued)
    due = body.due_date.isoformat() if body.due_date else None
    order = await handlers.erp_callback(
        "invoice_issued",
        webhook_id,
        body.order_number,
        request.app.state.runtime.uow(),
        lambda o, now: o.issue_invoice(
            body.invoice_number, Decimal(body.amount), issued_at=body.issued_at or now, due_date=due
        ),
    )
    return ErpAck(webhook_id=webhook_id, applied=order is not None)
