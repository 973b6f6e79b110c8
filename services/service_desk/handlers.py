"""Service desk commands and queries. Each opens the unit of work (and commits when it writes)."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.service_desk.db import SurveyRepository, WarrantyRepository
from services.service_desk.domain import Coverage, Survey, Warranty, check_coverage
from shared.auth import Principal
from shared.pagination import PageParams
from shared.uow import UnitOfWork


async def get_survey(survey_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Survey:
    async with uow:
        return await SurveyRepository(uow).get_visible(survey_id, principal)


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
