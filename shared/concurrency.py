"""Optimistic concurrency over HTTP: ``ETag`` on reads, ``If-Match`` on writes (412 on mismatch).

The ETag of a resource is its aggregate ``version`` as a **strong** entity tag (``"7"``).
It must be strong: RFC 9110 compares ``If-Match`` with the strong function, so a weak tag
(``W/"7"``) could never match and every conditional write would fail. That is sound because
a version identifies one state, and one state always serialises to the same bytes.

A router::

    @router.get("/v1/orders/{order_id}")
    async def read_order(order_id: UUID, response: Response, ...) -> OrderRead:
        order = await repo.get(order_id)
        set_etag(response, order.version)
        return OrderRead.model_validate(order)

    @router.post("/v1/orders/{order_id}/approve")
    async def approve(order_id: UUID, request: Request, response: Response, ...) -> OrderRead:
        async with uow:
            order = await repo.get(order_id)
            check_if_match(request, order.version)      # 412 if the client saw another version
            order.approve(...)
            await repo.save(order, expected_version=...)  # UPDATE ... WHERE version = :loaded
            await uow.commit()
        set_etag(response, order.version)

``check_if_match`` rejects a stale client early; the repository's ``WHERE version = ...``
still guards against a write that commits between the read and the update.
``If-Match`` is optional (absent means "no precondition") unless ``required=True`` (428).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from shared.errors import Problem


def etag_for(version: int | str) -> str:
    """The strong ETag of a resource at ``version``."""
    text = str(version)
    if not text or '"' in text or "\\" in text or not text.isprintable():
        raise ValueError("an ETag version must be printable and contain no quotes or backslashes")
    return f'"{text}"'


def set_etag(response: Response, version: int | str) -> None:
    response.headers["ETag"] = etag_for(version)


def _entity_tags(header: str) -> list[str]:
    """The entity tags of an If-Match value; weak ones keep their ``W/`` prefix."""
    return [part.strip() for part in header.split(",") if part.strip()]


def if_match_version(request: Request) -> str | None:
    """The single version the client claims in ``If-Match`` (None if absent or ``*``).

    For repositories that check the version inside the ``UPDATE`` itself.
    """
    header = request.headers.get("if-match")
    if header is None:
        return None
    tags = _entity_tags(header)
    if tags == ["*"]:
        return None
    if len(tags) != 1 or not (len(tags[0]) >= 2 and tags[0][0] == tags[0][-1] == '"'):
        raise Problem(
            400, "Malformed If-Match", 'If-Match must carry one strong ETag such as "7".', slug="malformed-if-match"
        )
    return tags[0][1:-1]


def check_if_match(request: Request, current_version: int | str, *, required: bool = False) -> None:
    """Raise a 412 problem unless ``If-Match`` matches the current version.

    ``*`` matches any existing resource. Weak tags never match (strong comparison, RFC 9110
    section 13.1.1). Without ``If-Match`` the write goes ahead, or fails with 428 when
    ``required``. The 412 carries the current ``ETag`` so the client can re-read and retry.
    """
    header = request.headers.get("if-match")
    current = etag_for(current_version)
    if header is None:
        if required:
            raise Problem(
                428,
                "Precondition Required",
                "Send If-Match with the ETag you read, so concurrent changes are not overwritten.",
                slug="if-match-required",
            )
        return
    tags = _entity_tags(header)
    if "*" in tags or current in tags:
        return
    raise Problem(
        412,
        "Precondition Failed",
        "The resource changed since you read it (If-Match does not match its current ETag); read it again and retry.",
        slug="etag-mismatch",
        headers={"ETag": current},
        current_etag=current,
    )
