"""The customer's repair acceptance page: accept the repair, or reject it (saying why) back to
repairing. Server-rendered like the survey page (same layout, languages and security headers);
the secret link from ``ticket.repair_completed`` is the credential, answered once, expiring.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse

from services.service_desk import handlers
from services.service_desk.api.survey_page import PUBLIC, choose_language, parse_form, render
from services.service_desk.domain.repair import AcceptanceLinkExpired, AcceptanceLinkUsed, Repair
from shared.domain import DomainError, NotFound
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/repairs/accept", tags=["repair acceptance (customers)"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]


def _refusal(exc: Exception, lang: str) -> HTMLResponse:
    if isinstance(exc, AcceptanceLinkUsed):
        return render("ticket_message.html", lang, 409, kind="repair_used")
    if isinstance(exc, AcceptanceLinkExpired):
        return render("ticket_message.html", lang, 410, kind="repair_expired")
    return render("ticket_message.html", lang, 404, kind="repair_unknown")


def _page(repair: Repair, lang: str, status: int = 200, *, error: str | None = None, reason: str = "") -> HTMLResponse:
    return render("repair_accept.html", lang, status, repair=repair, error=error, reason=reason)


@router.get("/{token}", response_class=HTMLResponse, summary="Accept the repair? (customer)", openapi_extra=PUBLIC)
async def acceptance_page(token: str, request: Request, uow: Uow) -> HTMLResponse:
    lang = choose_language(request)
    try:
        repair = await handlers.open_repair_acceptance(token, uow)
    except (NotFound, AcceptanceLinkUsed, AcceptanceLinkExpired) as exc:
        return _refusal(exc, lang)
    return _page(repair, lang)


@router.post("/{token}", response_class=HTMLResponse, summary="The customer's answer", openapi_extra=PUBLIC)
async def answer(token: str, request: Request, uow: Uow) -> HTMLResponse:
    form = parse_form(await request.body())
    lang = choose_language(request, form.get("lang"))
    accepted = form.get("answer") == "accept"
    reason = form.get("reason", "")[:2000]
    try:
        if form.get("answer") not in ("accept", "reject"):
            raise DomainError("choose accept or reject")
        await handlers.answer_repair(token, uow, accepted=accepted, reason=reason)
    except (NotFound, AcceptanceLinkUsed, AcceptanceLinkExpired) as exc:
        return _refusal(exc, lang)
    except DomainError:  # no choice, or a rejection without a reason: ask again
        try:
            repair = await handlers.open_repair_acceptance(token, uow)
        except (NotFound, AcceptanceLinkUsed, AcceptanceLinkExpired) as exc:
            return _refusal(exc, lang)
        return _page(repair, lang, 422, error="repair_error_reason", reason=reason)
    return render("ticket_message.html", lang, 200, kind="repair_accepted" if accepted else "repair_rejected")
