"""HTTP routes for bulk lead imports (CSV): upload, progress, per-row error report."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response

from services.leads import handlers
from shared.api import ApiResponse
from shared.auth import ADMIN, MARKETING_DIRECTOR, SALES_MANAGER, Principal, require_roles
from shared.errors import Problem, problem_responses
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/lead-imports", tags=["lead imports"])

Importer = Annotated[Principal, Depends(require_roles(MARKETING_DIRECTOR, SALES_MANAGER, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
MAX_BYTES = 50 * 1024 * 1024
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class LeadImportRead(ApiResponse):
    id: uuid.UUID
    filename: str | None
    status: str
    rows_total: int
    rows_done: int
    created: int
    merged: int
    rejected: int
    created_by: str
    created_at: datetime
    finished_at: datetime | None


@router.post(
    "",
    status_code=202,
    response_model=LeadImportRead,
    responses=problem_responses(400, 401, 403, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in (CSV, XLSX)},
        }
    },
)
async def start_import(
    request: Request,
    response: Response,
    principal: Importer,
    uow: Uow,
    x_filename: Annotated[str | None, Header(max_length=255)] = None,
) -> LeadImportRead:
    """Upload a UTF-8 CSV (`Content-Type: text/csv`) or an XLSX workbook (its first sheet; header
    in the first row). Columns among source, company_name,
    contact_name, phone, email, uscc, region, industry, campaign, utm_*). The worker registers the
    rows in the background like any other lead (matched, de-duplicated, assigned by the rules);
    follow `GET /v1/lead-imports/{id}`. The same file again (by SHA-256) is the same import (200)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (CSV, XLSX):
        raise Problem(415, detail=f"send the file as {CSV} or {XLSX}")
    content = await request.body()
    if len(content) > MAX_BYTES:
        raise Problem(413, detail=f"at most {MAX_BYTES} bytes")
    state, created = await handlers.start_import(content, x_filename, principal, uow, xlsx=media_type == XLSX)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/lead-imports/{state.id}"
    return LeadImportRead.model_validate(state._mapping)


@router.get("/{import_id}", response_model=LeadImportRead, responses=problem_responses(401, 403, 404))
async def get_import(import_id: uuid.UUID, principal: Importer, uow: Uow) -> LeadImportRead:
    """Progress: rows done of the total, leads created, merged into known customers, rejected."""
    return LeadImportRead.model_validate((await handlers.get_import(import_id, principal, uow))._mapping)


@router.get(
    "/{import_id}/errors",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 404)},
    response_class=Response,
)
async def import_errors(import_id: uuid.UUID, principal: Importer, uow: Uow) -> Response:
    """The rejected rows as CSV: row (1 = the first after the header) and why."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "error"])
    for error in await handlers.import_errors(import_id, principal, uow):
        writer.writerow([error.row_number, error.error])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
