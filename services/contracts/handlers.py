"""Contract commands. Each opens the unit of work and ends with an explicit commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from services.contracts.db import ContractRepository
from services.contracts.domain import Contract, ContractLine
from shared.auth import Principal
from shared.events import ContactInfo
from shared.pagination import PageParams
from shared.uow import UnitOfWork


@dataclass(frozen=True)
class DraftContract:
    customer_id: str
    customer_name: str
    owner_id: str
    currency: str
    lines: list[ContractLine]
    payment_terms: str
    contact: ContactInfo | None = None
    region: str | None = None
    discount_pct: Decimal = Decimal(0)
    delivery_address: str | None = None
    requested_delivery_date: str | None = None


async def draft_contract(cmd: DraftContract, uow: UnitOfWork) -> Contract:
    async with uow:
        contracts = ContractRepository(uow)
        now = datetime.now(UTC)
        contract = Contract.draft(
            id=uuid.uuid4(), number=await contracts.next_number(now), created_at=now, **cmd.__dict__
        )
        await contracts.add(contract)
        await uow.commit()
    return contract


async def get_contract(contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Contract:
    async with uow:
        return await ContractRepository(uow).get_visible(contract_id, principal)


async def sign_contract_shortcut(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> Contract:
    """SHORTCUT (platform issue): sign a draft directly; emits ``contract.signed``."""
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        contract.sign_shortcut(datetime.now(UTC))
        await contracts.save(contract)
        await uow.commit()
    return contract


async def list_contracts(
    principal: Principal, uow: UnitOfWork, page: PageParams, *, customer_id: str | None = None
) -> tuple[list[Contract], str | None]:
    async with uow:
        return await ContractRepository(uow).list(principal, page, filters={"customer_id": customer_id})
