"""Leads commands and queries. Each opens the unit of work (and commits when it writes)."""

from __future__ import annotations

import uuid

from services.leads.db import AccountRepository
from services.leads.domain import Account
from shared.auth import Principal
from shared.pagination import PageParams
from shared.uow import UnitOfWork


async def get_account(account_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Account:
    async with uow:
        return await AccountRepository(uow).get_visible(account_id, principal)


async def list_accounts(
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    customer_id: str | None = None,
    classification: str | None = None,
) -> tuple[list[Account], str | None]:
    async with uow:
        return await AccountRepository(uow).list(
            principal, page, filters={"customer_id": customer_id, "classification": classification}
        )
