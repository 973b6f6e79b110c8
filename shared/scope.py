"""Row visibility: who may see which owner's objects (DESIGN.md section 5, OWASP API1).

A principal whose only sales role is ``sales_rep`` sees just the objects they own; another
owner's object is then "not found", never "forbidden". SHORTCUT (platform issue): managers,
directors and back-office roles see every object until the leads service's team and region
data lets them be scoped to their team or region.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, true
from sqlalchemy.sql.elements import ColumnClause

from shared.auth import Principal

BROAD_ROLES = frozenset(
    {"sales_manager", "regional_director", "marketing_director", "legal", "finance", "admin", "integration"}
)


def sees_everything(principal: Principal) -> bool:
    return bool(principal.roles & BROAD_ROLES)


def owner_filter(principal: Principal, owner_column: ColumnClause) -> ColumnElement[bool]:
    """A WHERE clause limiting rows to what ``principal`` may see."""
    if sees_everything(principal):
        return true()
    return owner_column == principal.sub
