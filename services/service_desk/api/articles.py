"""Knowledge base: drafts, published versions, search (Chinese and English), ticket suggestions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.service_desk import handlers
from services.service_desk.api.schemas import ArticleDetail, ArticleHit, ArticleRead, ArticleWrite
from services.service_desk.domain import ArticleStatus
from shared.api import SafeStr
from shared.auth import ADMIN, SUPPORT_AGENT, SUPPORT_LEAD, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/kb-articles", tags=["knowledge base"], route_class=IdempotentRoute)
suggestions = APIRouter(prefix="/v1/tickets", tags=["tickets"])

Support = Annotated[Principal, Depends(require_roles(SUPPORT_AGENT, SUPPORT_LEAD, ADMIN))]
Lead = Annotated[Principal, Depends(require_roles(SUPPORT_LEAD, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 412, 422)


@router.post("", status_code=201, response_model=ArticleRead, responses=problem_responses(400, 401, 403, 409))
async def draft_article(body: ArticleWrite, response: Response, principal: Support, uow: Uow) -> ArticleRead:
    """A new article, as a draft (not searchable until a lead publishes it)."""
    article = await handlers.draft_article(**body.model_dump(), principal=principal, uow=uow)
    response.headers["Location"] = f"/v1/kb-articles/{article.id}"
    set_etag(response, article.version)
    return _read(article)


@router.get("", response_model=Page[ArticleRead], responses=problem_responses(400, 401, 403))
async def list_articles(
    request: Request,
    response: Response,
    principal: Support,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    category: Annotated[SafeStr | None, Query(max_length=100)] = None,
    status: Annotated[ArticleStatus | None, Query()] = None,
) -> Page[ArticleRead]:
    items, next_cursor = await handlers.list_articles(
        principal, uow, page, category=category, status=status.value if status else None
    )
    return paginated(request, response, [_read(a) for a in items], next_cursor)


@router.get("/search", response_model=list[ArticleHit], responses=problem_responses(400, 401, 403, 422))
async def search_articles(
    principal: Support,
    uow: Uow,
    q: Annotated[SafeStr, Query(min_length=1, max_length=200, description="Chinese or English words")],
    category: Annotated[SafeStr | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[ArticleHit]:
    """Published articles containing every term of `q`, best first (the top `limit`, not paged)."""
    return [_hit(a, rank) for a, rank in await handlers.search_articles(q, uow, category=category, limit=limit)]


@router.get("/{article_id}", response_model=ArticleDetail, responses=problem_responses(401, 403, 404))
async def get_article(article_id: uuid.UUID, response: Response, principal: Support, uow: Uow) -> ArticleDetail:
    article, versions = await handlers.get_article(article_id, principal, uow)
    set_etag(response, article.version)
    return ArticleDetail.model_validate({**_read(article).model_dump(), "versions": [v.__dict__ for v in versions]})


@router.put("/{article_id}/draft", response_model=ArticleRead, responses=WRITE_ERRORS)
async def edit_draft(
    article_id: uuid.UUID, body: ArticleWrite, request: Request, response: Response, principal: Support, uow: Uow
) -> ArticleRead:
    """Edit the draft; readers keep seeing the published version until the next publish."""
    article = await handlers.edit_article(
        article_id, principal, uow, if_match=expected_version(request), **body.model_dump()
    )
    set_etag(response, article.version)
    return _read(article)


@router.post("/{article_id}/publish", response_model=ArticleRead, responses=WRITE_ERRORS)
async def publish(
    article_id: uuid.UUID, request: Request, response: Response, principal: Lead, uow: Uow
) -> ArticleRead:
    """The draft becomes the next published version."""
    article = await handlers.publish_article(article_id, principal, uow, if_match=expected_version(request))
    set_etag(response, article.version)
    return _read(article)


@router.post("/{article_id}/archive", response_model=ArticleRead, responses=WRITE_ERRORS)
async def archive(
    article_id: uuid.UUID, request: Request, response: Response, principal: Lead, uow: Uow
) -> ArticleRead:
    """Withdraw the article: no longer searched, suggested or linkable (its versions stay readable)."""
    article = await handlers.archive_article(article_id, principal, uow, if_match=expected_version(request))
    set_etag(response, article.version)
    return _read(article)


@suggestions.get(
    "/{ticket_id}/suggested-articles", response_model=list[ArticleHit], responses=problem_responses(401, 403, 404)
)
async def suggested_articles(ticket_id: uuid.UUID, principal: Support, uow: Uow) -> list[ArticleHit]:
    """Published articles that may answer the ticket, from its subject."""
    return [_hit(a, rank) for a, rank in await handlers.suggest_articles(ticket_id, principal, uow)]


def _read(article) -> ArticleRead:
    return ArticleRead.model_validate(
        {
            **article.__dict__,
            "status": article.status.value,
            "published": article.published.__dict__ if article.published else None,
        }
    )


def _hit(article, rank: float) -> ArticleHit:
    published = article.published
    return ArticleHit(
        id=article.id,
        category=published.category,
        title=published.title,
        version=published.number,
        rank=rank,
        excerpt=published.body[:200],
    )
