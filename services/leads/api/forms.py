"""Web-to-lead: the company's web forms post leads here with the form's API key (public), and
admins or the marketing director manage the forms and their keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from services.leads import handlers
from services.leads.api.schemas import LeadFormPut, LeadFormRead, LeadSubmission, SubmissionReceipt, attribution_of
from services.leads.config import assignment_policy, load_grading_rules
from services.leads.domain import LeadSource
from services.leads.domain.web_form import LeadForm
from shared.api import SafeStr
from shared.auth import ADMIN, MARKETING_DIRECTOR, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import Problem, problem_responses
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/lead-forms", tags=["web-to-lead"])

Marketing = Annotated[Principal, Depends(require_roles(MARKETING_DIRECTOR, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
FormId = Annotated[SafeStr, Path(min_length=1, max_length=100)]
PUBLIC = {"x-public": "a web form's submission: the form's API key (X-Api-Key) is the credential"}


def _read(form: LeadForm, response: Response, key: str | None = None) -> LeadFormRead:
    set_etag(response, form.version)
    return LeadFormRead.model_validate({**form.__dict__, "source": form.source.value, "api_key": key})


@router.put("/{form_id}", response_model=LeadFormRead, responses=problem_responses(400, 401, 403, 412, 422))
async def put_form(
    form_id: FormId, body: LeadFormPut, request: Request, response: Response, principal: Marketing, uow: Uow
) -> LeadFormRead:
    """Create (201, with its `api_key`, shown this once) or update a web form: the source,
    campaign, region and industry its leads get, and its rate limit."""
    cmd = handlers.PutForm(form_id=form_id, **body.model_dump())
    form, key = await handlers.put_form(cmd, principal, uow, if_match=expected_version(request))
    response.status_code = 201 if key else 200
    return _read(form, response, key)


@router.post("/{form_id}/key", response_model=LeadFormRead, responses=problem_responses(401, 403, 404))
async def rotate_key(form_id: FormId, response: Response, principal: Marketing, uow: Uow) -> LeadFormRead:
    """A new API key (shown this once); the old one stops working at once."""
    form, key = await handlers.rotate_form_key(form_id, principal, uow)
    return _read(form, response, key)


@router.get("", response_model=Page[LeadFormRead], responses=problem_responses(400, 401, 403))
async def list_forms(
    request: Request,
    response: Response,
    principal: Marketing,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[LeadFormRead]:
    items, next_cursor = await handlers.list_forms(principal, uow, page)
    return paginated(request, response, [_read(f, Response()) for f in items], next_cursor)


@router.get("/{form_id}", response_model=LeadFormRead, responses=problem_responses(401, 403, 404))
async def get_form(form_id: FormId, response: Response, principal: Marketing, uow: Uow) -> LeadFormRead:
    return _read(await handlers.get_form(form_id, principal, uow), response)


@router.post(
    "/{form_id}/submissions",
    status_code=202,
    response_model=SubmissionReceipt,
    responses=problem_responses(400, 401, 422, 429),
    openapi_extra=PUBLIC,
)
async def submit(
    form_id: FormId,
    body: LeadSubmission,
    request: Request,
    uow: Uow,
    x_api_key: Annotated[str | None, Header(max_length=200)] = None,
) -> SubmissionReceipt:
    """A lead from the company's web form (public: the form's key in `X-Api-Key`). Always the same
    202 answer, whether the lead is new, matched an earlier lead or account, or was a bot filling
    the `website` honeypot: nothing tells a caller whether a customer was already known. New leads
    are assigned by the rules (or wait in the pool). 401 for an unknown form or a wrong key (the
    same), 429 with `Retry-After` beyond the form's rate limit."""
    settings = request.app.state.settings
    cmd = handlers.RegisterLead(
        source=LeadSource.WEB_FORM,
        company_name=body.company_name,
        contact_name=body.contact_name,
        phone=body.phone,
        email=body.email,
        region=body.region,
        industry=body.industry,
        attribution=attribution_of(body),
    )
    try:
        await handlers.submit_form(
            form_id,
            x_api_key,
            cmd,
            uow,
            honeypot_filled=bool(body.website and body.website.strip()),
            rules=load_grading_rules(settings.grading_rules_path),
            phone_region=settings.phone_region,
            policy=assignment_policy(settings),
        )
    except handlers.FormRateLimited as exc:
        raise Problem(429, exc.title, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    return SubmissionReceipt()
