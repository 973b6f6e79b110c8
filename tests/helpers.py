"""Building blocks the flow tests share: contracts signed through the real contracts flow,
and counts read straight from the services' schemas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import asyncpg

from services.contracts import handlers as contract_handlers
from services.contracts.db import platform_tables as contract_tables
from services.contracts.domain import ContractLine, ReviewDecision
from services.contracts.domain.signing import Signatory
from shared.auth import Principal
from shared.db import create_engine
from shared.events import ContactInfo
from shared.uow import UnitOfWork
from tests.conftest import settings_for

REP = Principal(sub="rep-1", roles=frozenset({"sales_rep"}))
LEGAL = Principal(sub="legal-1", roles=frozenset({"legal"}))


def contract_payload(customer: str = "cust-1", **overrides) -> dict:
    body = {
        "customer_id": customer,
        "customer_name": f"{customer} Ltd.",
        "contact": {"name": "Li Lei", "email": "li@example.com"},
        "owner_id": "rep-1",
        "region": "east",
        "currency": "CNY",
        "payment_terms": "net 30",
        "delivery_address": "1 Century Ave, Shanghai",
        "lines": [
            {"sku": "PUMP-1", "description": "Pump", "quantity": "2", "unit_price": "1500.00", "warranty_months": 12},
            {"sku": "SVC-1", "description": "Install", "quantity": "1", "unit_price": "300.00"},
        ],
    }
    body.update(overrides)
    return body


async def sign_contract(
    uow: Callable[[], UnitOfWork], cmd: contract_handlers.DraftContract, *, company_signatory: str = "Wang Fang"
) -> uuid.UUID:
    """One contract through the real flow, at handler level: draft, submit, legal approval, every
    approval the policy asks for, send for signature, and both parties signing through their links."""
    contract = await contract_handlers.draft_contract(cmd, uow())
    customer = cmd.contact.name if cmd.contact else cmd.customer_name
    return await sign_draft(
        uow, contract.id, owner_id=cmd.owner_id, customer=customer, company_signatory=company_signatory
    )


async def sign_draft(
    uow: Callable[[], UnitOfWork],
    contract_id: uuid.UUID,
    *,
    owner_id: str,
    customer: str,
    company_signatory: str = "Wang Fang",
) -> uuid.UUID:
    """A draft (typed in, or drafted from opportunity.won) through submit, legal approval, every
    approval the policy asks for, send for signature, and both parties signing through their links."""
    owner = REP if owner_id == REP.sub else Principal(sub=owner_id, roles=REP.roles)
    await contract_handlers.submit_contract(contract_id, owner, uow())
    contract = await contract_handlers.review_contract(contract_id, LEGAL, uow(), decision=ReviewDecision.APPROVE)
    while (step := contract.pending_step) is not None:
        approver = Principal(sub=f"{step.role}-1", roles=frozenset({step.role}), region=contract.region)
        contract, _ = await contract_handlers.approve_contract(contract.id, approver, uow())
    _, issued = await contract_handlers.send_for_signature(
        contract.id,
        owner,
        uow(),
        customer=Signatory(customer),
        company=Signatory(company_signatory),
        ttl=timedelta(days=7),
    )
    for link in issued:
        await contract_handlers.sign_with_link(
            contract_handlers.SignWithLink(
                token=link.token, typed_name=link.link.signatory.name, confirmed=True, ip="127.0.0.1"
            ),
            uow(),
        )
    return contract.id


async def sign_contracts(
    count: int, *, customer_prefix: str = "cust", lines: list[ContractLine] | None = None
) -> list[uuid.UUID]:
    """Draft and sign ``count`` contracts through the real contracts flow (handlers, no HTTP):
    each is reviewed, approved as the policy requires and signed by both parties through their
    signing links, so each emits exactly one ``contract.signed``. A few run side by side.

    ``lines`` defaults to one pump without warranty."""
    settings = settings_for("contracts")
    engine = create_engine(settings)

    def uow() -> UnitOfWork:
        return UnitOfWork(engine, contract_tables, settings.source)

    def draft(i: int) -> contract_handlers.DraftContract:
        return contract_handlers.DraftContract(
            customer_id=f"{customer_prefix}-{i}",
            customer_name=f"Customer {i}",
            owner_id="rep-1",
            currency="CNY",
            payment_terms="net 30",
            contact=ContactInfo(name="Han Meimei"),
            lines=lines or [ContractLine(sku="P-1", description="Pump", quantity=Decimal(1), unit_price=Decimal(100))],
        )

    ids: list[uuid.UUID | None] = [None] * count
    lanes = 8

    async def lane(start: int) -> None:
        for i in range(start, count, lanes):
            ids[i] = await sign_contract(uow, draft(i))

    try:
        await asyncio.gather(*(lane(k) for k in range(min(lanes, count))))
    finally:
        await engine.dispose()
    return [i for i in ids if i is not None]


async def count(db: asyncpg.Connection, sql: str, *args) -> int:
    return int(await db.fetchval(sql, *args))
