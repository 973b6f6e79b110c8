"""Service desk commands and queries. Each opens the unit of work (and commits when it writes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from services.service_desk.consumers import SURVEY_REMINDER
from services.service_desk.db import SurveyRepository, WarrantyRepository
from services.service_desk.domain import Coverage, Survey, Warranty, check_coverage
from services.service_desk.links import hash_token, well_formed
from shared.auth import Principal
from shared.domain import NotFound
from shared.pagination import PageParams
from shared.timers import cancel_timer
from shared.uow import UnitOfWork


async def get_survey(survey_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Survey:
    async with uow:
        return await SurveyRepository(uow).get_visible(survey_id, principal)


@dataclass(frozen=True)
class AnswerSurvey:
    token: str
    csat: int | None
    nps: int | None
    comment: str | None


async def open_survey(token: str, uow: UnitOfWork) -> Survey:
    """The survey behind a customer's link, if it may still be answered (else the reason, raised)."""
    async with uow:
        survey = await _by_token(token, SurveyRepository(uow))
    survey.check_open(datetime.now(UTC))
    return survey


async def answer_survey(cmd: AnswerSurvey, uow: UnitOfWork) -> Survey:
    """One answer per link: the row lock makes a second, concurrent answer see the first."""
    async with uow:
        surveys = SurveyRepository(uow)
        survey = await _by_token(cmd.token, surveys, for_update=True)
        survey.answer(csat=cmd.csat, nps=cmd.nps, comment=cmd.comment, now=datetime.now(UTC))
        await surveys.save(survey)
        await cancel_timer(uow, SURVEY_REMINDER, key=str(survey.id))
        await uow.commit()
    return survey


async def _by_token(token: str, surveys: SurveyRepository, *, for_update: bool = False) -> Survey:
    survey = None
    if well_formed(token):
        survey = await surveys.by_token_hash(hash_token(token), for_update=for_update)
    if survey is None:
        raise NotFound("no survey has this link")
    return survey


async def list_surveys(
    principal: Principal, uow: UnitOfWork, page: PageParams, *, order_id: uuid.UUID | None = None
) -> tuple[list[Survey], str | None]:
    async with uow:
        return await SurveyRepository(uow).list(principal, page, filters={"order_id": order_id})


async def list_warranties(
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    serial_number: str | None = None,
    order_id: uuid.UUID | None = None,
) -> tuple[list[Warranty], str | None]:
    async with uow:
        return await WarrantyRepository(uow).list(
            principal, page, filters={"serial_number": serial_number, "order_id": order_id}
        )


async def get_warranty(warranty_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Warranty:
    async with uow:
        return await WarrantyRepository(uow).get_visible(warranty_id, principal)


async def check_warranty(
    principal: Principal,
    uow: UnitOfWork,
    *,
    at: datetime,
    serial_number: str | None = None,
    order_id: uuid.UUID | None = None,
    line_no: int | None = None,
) -> Coverage:
    """Coverage of a serial number, or of an order line, at a moment (a claim's failure date)."""
    if serial_number is not None:
        what = f"serial number {serial_number}"
    elif line_no is not None:
        what = f"line {line_no} of order {order_id}"
    else:
        what = f"order {order_id}"
    async with uow:
        candidates = await WarrantyRepository(uow).matching(
            principal, serial_number=serial_number, order_id=order_id, line_no=line_no
        )
    return check_coverage(candidates, at, what=what)
