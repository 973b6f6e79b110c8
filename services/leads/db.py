"""The leads schema: tables and repositories (SQLAlchemy Core)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, Integer, Table, Text, select
from sqlalchemy.dialects.postgresql import UUID

from services.leads.domain import Account, AccountClassification
from shared.db import service_metadata, utc_timestamp
from shared.repository import Repository

metadata, platform_tables = service_metadata("leads")

accounts = Table(
    "accounts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("customer_id", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("classification", Text, nullable=False),
    Column("region", Text),
    Column("signed_contracts", Integer, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Index("ix_accounts_created_at_id", "created_at", "id"),
    Index("ix_accounts_owner_id_created_at_id", "owner_id", "created_at", "id"),
)


class AccountRepository(Repository[Account]):
    table = accounts
    noun = "account"

    async def by_customer_id(self, customer_id: str) -> Account | None:
        row = (
            await self.uow.execute(select(accounts).where(accounts.c.customer_id == customer_id).with_for_update())
        ).first()
        if row is None:
            return None
        account = self.from_row(row)
        self._loaded_versions[account.aggregate_id] = account.version
        return account

    def to_row(self, account: Account) -> dict[str, Any]:
        return {
            "id": account.id,
            "version": account.version,
            "customer_id": account.customer_id,
            "name": account.name,
            "owner_id": account.owner_id,
            "classification": account.classification.value,
            "region": account.region,
            "signed_contracts": account.signed_contracts,
            "created_at": account.created_at,
        }

    def from_row(self, row: Any) -> Account:
        return Account(
            id=row.id,
            version=row.version,
            customer_id=row.customer_id,
            name=row.name,
            owner_id=row.owner_id,
            classification=AccountClassification(row.classification),
            region=row.region,
            signed_contracts=row.signed_contracts,
            created_at=row.created_at,
        )
