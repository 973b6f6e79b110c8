"""Quotes: drafted on an opportunity, priced by the price rules, accepted by the customer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from services.leads import handlers
from services.leads.api.router import Reader, Uow
from services.leads.api.sales_schemas import QuoteCreate, QuoteLineRead, QuoteRead
from services.leads.config import load_price_rules
from services.leads.domain.quote import LineInput, Quote
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version

opportunity_quotes = APIRouter(prefix="/v1/opportunities", tags=["quotes"], route_class=IdempotentRoute)
router = APIRouter(prefix="/v1/quotes", tags=["quotes"], route_class=IdempotentRoute)
WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 412, 422)


def read_quote(quote: Quote, response: Response | None = None) -> QuoteRead:
    if response is not None:
        set_etag(response, quote.version)
    lines = [
        QuoteLineRead.model_validate(
            {
                **{name: getattr(line, name) for name in line.__slots__},
                "list_amount": line.list_amount,
                "amount": line.amount,
            }
        )
        for line in quote.lines
    ]
    return QuoteRead.model_validate(
        {
            **quote.__dict__,
            "status": quote.status.value,
            "lines": lines,
            "subtotal_amount": quote.subtotal_amount,
            "discount_amount": quote.discount_amount,
            "total_amount": quote.total_amount,
        }
    )


@opportunity_quotes.post(
    "/{opportunity_id}/quotes",
    status_code=201,
    response_model=QuoteRead,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def draft_quote(
    opportunity_id: uuid.UUID, body: QuoteCreate, request: Request, response: Response, principal: Reader, uow: Uow
) -> QuoteRead:
    """A quote (`QT-<year>-<number>`) on an open opportunity. Each line gets the volume discount
    of the price rules' tier its quantity reaches; `extra_discount_pct` on the whole quote may
    not exceed your discount authority (shared policy: rep 5 %, manager 10 %, director 20 %)."""
    cmd = handlers.DraftQuote(
        lines=[LineInput(sku=x.sku, name=x.name, quantity=x.quantity, unit_price=x.unit_price) for x in body.lines],
        valid_until=body.valid_until,
        extra_discount_pct=body.extra_discount_pct,
        currency=body.currency,
        payment_terms=body.payment_terms,
        delivery_address=body.delivery_address,
    )
    quote = await handlers.draft_quote(
        opportunity_id, cmd, principal, uow, rules=load_price_rules(request.app.state.settings.price_rules_path)
    )
    response.headers["Location"] = f"/v1/quotes/{quote.id}"
    return read_quote(quote, response)


@router.get("", response_model=Page[QuoteRead], responses=problem_responses(400, 401, 403))
async def list_quotes(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    opportunity_id: uuid.UUID | None = None,
) -> Page[QuoteRead]:
    items, next_cursor = await handlers.list_quotes(principal, uow, page, opportunity_id=opportunity_id)
    return paginated(request, response, [read_quote(q) for q in items], next_cursor)


@router.get("/{quote_id}", response_model=QuoteRead, responses=problem_responses(401, 403, 404))
async def get_quote(quote_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> QuoteRead:
    return read_quote(await handlers.get_quote(quote_id, principal, uow), response)


@router.post("/{quote_id}/accept", response_model=QuoteRead, responses=WRITE_PROBLEMS)
async def accept_quote(
    quote_id: uuid.UUID, request: Request, response: Response, principal: Reader, uow: Uow
) -> QuoteRead:
    """The customer accepted the quote (before its validity date): `quote.accepted`. An
    opportunity has one accepted quote, the one it is won on. `If-Match` honoured."""
    quote = await handlers.accept_quote(quote_id, principal, uow, if_match=expected_version(request))
    return read_quote(quote, response)
