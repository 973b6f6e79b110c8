"""Contract commands. Each opens the unit of work and ends with an explicit commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from services.contracts.db import ContractRepository
from services.contracts.domain import ApprovalStep, ClauseComment, Contract, ContractLine, ReviewDecision
from shared.auth import Principal
from shared.events import ContactInfo
from shared.pagination import PageParams
from shared.policies import discount_authority
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
    owner_role: str = "sales_rep"  # whose discount authority the approval routing starts from


def owner_role_for(principal: Principal, owner_id: str) -> str:
    """The owner's role for approval routing: the drafter's own authority when they own it, else a rep's."""
    if owner_id != principal.sub:
        return "sales_rep"
    level = discount_authority().authority_of(principal.roles)
    return level.role if level is not None else "sales_rep"


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
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    customer_id: str | None = None,
    status: str | None = None,
) -> tuple[list[Contract], str | None]:
    async with uow:
        return await ContractRepository(uow).list(
            principal, page, filters={"customer_id": customer_id, "status": status}
        )


async def submit_contract(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> Contract:
    """Submit the draft revision for legal review (``contract.submitted``)."""
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        contract.submit(by=principal.sub, now=datetime.now(UTC))
        await contracts.save(contract)
        await uow.commit()
    return contract


async def review_contract(
    contract_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    decision: ReviewDecision,
    comments: tuple[ClauseComment, ...] = (),
    note: str | None = None,
    if_match: int | None = None,
) -> Contract:
    """Legal approves the revision (on to approval routing) or requests changes per clause."""
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        contract.review(
            by=principal.sub,
            decision=decision,
            comments=comments,
            note=note,
            now=datetime.now(UTC),
            policy=discount_authority(),
        )
        await contracts.save(contract)
        await uow.commit()
    return contract


async def approve_contract(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> tuple[Contract, ApprovalStep]:
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        step = contract.approve(
            by=principal.sub,
            roles=principal.roles,
            region=principal.region,
            now=datetime.now(UTC),
            policy=discount_authority(),
        )
        await contracts.save(contract)
        await uow.commit()
    return contract, step


async def reject_contract(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, reason: str, if_match: int | None = None
) -> tuple[Contract, ApprovalStep]:
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        step = contract.reject(
            by=principal.sub,
            roles=principal.roles,
            region=principal.region,
            reason=reason,
            now=datetime.now(UTC),
            policy=discount_authority(),
        )
        await contracts.save(contract)
        await uow.commit()
    return contract, step
