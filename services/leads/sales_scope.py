"""Who sees which accounts, contacts, opportunities and quotes (DESIGN.md section 5).

A rep sees what they own; a sales manager also their team's (the token's ``team`` claim); a
regional director also their region's (the ``region`` claim); admin everything. An object is
stamped with its owner's team and region when it is created. Everything else is a 404.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, true

from shared.auth import REGIONAL_DIRECTOR, SALES_MANAGER, Principal


def sales_scope(
    principal: Principal | None, *, owner: ColumnElement, team: ColumnElement, region: ColumnElement
) -> ColumnElement[bool]:
    """``principal=None`` is the system itself (consumers, timers)."""
    alternatives = scope_alternatives(principal, owner=owner, team=team, region=region)
    return true() if alternatives is None else or_(*alternatives)


def scope_alternatives(
    principal: Principal | None, *, owner: ColumnElement, team: ColumnElement, region: ColumnElement
) -> list[ColumnElement[bool]] | None:
    """The conditions any of which makes an object visible; None: everything is. A list query can
    run one keyset query per alternative on that column's index (an OR of them has no index)."""
    if principal is None or principal.is_admin:
        return None
    allowed = [owner == principal.sub]
    if SALES_MANAGER in principal.roles and principal.team:
        allowed.append(team == principal.team)
    if REGIONAL_DIRECTOR in principal.roles and principal.region:
        allowed.append(region == principal.region)
    return allowed
