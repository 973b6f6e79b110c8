"""Service desk reports: SQL aggregates over the service's own tables for a period.

Read-only queries (no unit of work commit). SLA compliance reads the clocks kept on each
ticket (a target is met when its clock stopped without a breach); times are wall-clock
seconds from opening, with the business seconds the SLA counted beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from services.service_desk.domain import metrics
from shared.uow import UnitOfWork

_TICKETS = text(
    """
    SELECT count(*) AS opened,
           count(*) FILTER (WHERE type = 'complaint') AS complaints,
           count(*) FILTER (WHERE repeat_of IS NOT NULL) AS repeats
    FROM service_desk.tickets
    WHERE created_at >= :start AND created_at < :end AND (CAST(:grp AS text) IS NULL OR "group" = :grp)
    """
)

_SLA = text(
    """
    SELECT priority, "group", clock.key AS kind,
           count(*) FILTER (WHERE clock.value->>'met_at' IS NOT NULL OR clock.value->>'breached_at' IS NOT NULL)
             AS decided,
           count(*) FILTER (WHERE clock.value->>'met_at' IS NOT NULL AND clock.value->>'breached_at' IS NULL) AS met,
           count(*) FILTER (WHERE clock.value->>'breached_at' IS NOT NULL) AS breached,
           avg((clock.value->>'used_seconds')::float)
             FILTER (WHERE clock.value->>'met_at' IS NOT NULL) AS avg_business_seconds
    FROM service_desk.tickets, jsonb_each(sla) AS clock
    WHERE created_at >= :start AND created_at < :end AND (CAST(:grp AS text) IS NULL OR "group" = :grp)
    GROUP BY priority, "group", clock.key
    ORDER BY priority, "group", clock.key
    """
)

_TIMES = text(
    """
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_responded_at - created_at))
             FILTER (WHERE first_responded_at IS NOT NULL) AS first_response_p50,
           avg(extract(epoch FROM first_responded_at - created_at))
             FILTER (WHERE first_responded_at IS NOT NULL) AS first_response_avg,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))
             FILTER (WHERE resolved_at IS NOT NULL) AS resolution_p50,
           avg(extract(epoch FROM resolved_at - created_at)) FILTER (WHERE resolved_at IS NOT NULL) AS resolution_avg
    FROM service_desk.tickets
    WHERE created_at >= :start AND created_at < :end AND (CAST(:grp AS text) IS NULL OR "group" = :grp)
    """
)

_BACKLOG = text(
    """
    SELECT CASE WHEN age < interval '1 day' THEN 'under_1_day'
                WHEN age < interval '3 days' THEN '1_to_3_days'
                WHEN age < interval '7 days' THEN '3_to_7_days'
                ELSE 'over_7_days' END AS bucket,
           count(*) AS tickets
    FROM (SELECT :now - created_at AS age FROM service_desk.tickets
          WHERE status NOT IN ('resolved', 'closed') AND (CAST(:grp AS text) IS NULL OR "group" = :grp)) AS open_tickets
    GROUP BY bucket
    """
)

_SURVEYS = text(
    """
    SELECT trigger, count(*) AS sent, count(*) FILTER (WHERE status = 'completed') AS answered
    FROM service_desk.surveys WHERE created_at >= :start AND created_at < :end
    GROUP BY trigger ORDER BY trigger
    """
)

_SCORES = text(
    """
    SELECT trigger, 'csat' AS question, csat AS score, count(*) AS answers
    FROM service_desk.surveys WHERE created_at >= :start AND created_at < :end AND csat IS NOT NULL
    GROUP BY trigger, csat
    UNION ALL
    SELECT trigger, 'nps', nps, count(*)
    FROM service_desk.surveys WHERE created_at >= :start AND created_at < :end AND nps IS NOT NULL
    GROUP BY trigger, nps
    """
)


def _text(value: Any) -> str | None:
    """Decimals as strings in JSON (never floats), like money."""
    return None if value is None else str(value)


def rate(part: int, whole: int) -> str | None:
    return _text(metrics.rate(part, whole))


def csat_average(distribution: dict[int, int]) -> str | None:
    return _text(metrics.csat_average(distribution))


def nps(distribution: dict[int, int]) -> str | None:
    return _text(metrics.nps(distribution))


_SCORES_BY = text(
    """
    SELECT dimension, key, count(*) AS sent, count(csat) AS answered,
           avg(csat) AS csat_average,
           count(*) FILTER (WHERE nps >= 9) AS promoters, count(*) FILTER (WHERE nps <= 6) AS detractors,
           count(nps) AS nps_answers
    FROM (
      SELECT 'team' AS dimension, team AS key, csat, nps FROM service_desk.surveys
      WHERE created_at >= :start AND created_at < :end AND team IS NOT NULL
      UNION ALL
      SELECT 'product', product, csat, nps FROM service_desk.surveys, unnest(products) AS product
      WHERE created_at >= :start AND created_at < :end
    ) AS answers
    GROUP BY dimension, key ORDER BY dimension, key
    """
)

BACKLOG_BUCKETS = ("under_1_day", "1_to_3_days", "3_to_7_days", "over_7_days")


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


async def summary(uow: UnitOfWork, period: Period, *, group: str | None, now: datetime) -> dict[str, Any]:
    params = {"start": period.start, "end": period.end, "grp": group}
    async with uow:
        tickets = (await uow.execute(_TICKETS, params)).one()
        sla_rows = (await uow.execute(_SLA, params)).all()
        times = (await uow.execute(_TIMES, params)).one()
        backlog = {row.bucket: row.tickets for row in await uow.execute(_BACKLOG, {"now": now, "grp": group})}
        surveys = (await uow.execute(_SURVEYS, params)).all() if group is None else []
        scores: dict[tuple[str, str], dict[int, int]] = {}
        for row in await uow.execute(_SCORES, params) if group is None else []:
            scores.setdefault((row.trigger, row.question), {})[row.score] = row.answers
        breakdown = (await uow.execute(_SCORES_BY, params)).all() if group is None else []
    return {
        "period": {"start": period.start, "end": period.end},
        "group": group,
        "tickets": {
            "opened": tickets.opened,
            "complaints": tickets.complaints,
            "complaint_rate": rate(tickets.complaints, tickets.opened),
            "repeat_issues": tickets.repeats,
            "repeat_issue_rate": rate(tickets.repeats, tickets.opened),
        },
        "sla": [
            {
                "priority": row.priority,
                "group": row.group,
                "kind": row.kind,
                "decided": row.decided,
                "met": row.met,
                "breached": row.breached,
                "compliance": rate(row.met, row.decided),
                "avg_business_seconds": round(row.avg_business_seconds, 1) if row.avg_business_seconds else None,
            }
            for row in sla_rows
        ],
        "times_seconds": {key: round(value, 1) if value is not None else None for key, value in times._mapping.items()},
        "backlog_by_age": {bucket: backlog.get(bucket, 0) for bucket in BACKLOG_BUCKETS},
        # Surveys are per customer, not per group: reported for the whole desk only.
        "surveys": [_survey_row(row, scores) for row in surveys],
        "surveys_by_team": [_breakdown(row) for row in breakdown if row.dimension == "team"],
        "surveys_by_product": [_breakdown(row) for row in breakdown if row.dimension == "product"],
    }


def _survey_row(row: Any, scores: dict[tuple[str, str], dict[int, int]]) -> dict[str, Any]:
    csat = scores.get((row.trigger, "csat"), {})
    promoters = scores.get((row.trigger, "nps"), {})
    return {
        "trigger": row.trigger,
        "sent": row.sent,
        "answered": row.answered,
        "response_rate": rate(row.answered, row.sent),
        "csat_average": csat_average(csat),
        "csat_distribution": {str(score): csat.get(score, 0) for score in range(1, 6)},
        "nps": nps(promoters),
        "nps_distribution": {str(score): promoters.get(score, 0) for score in range(11)},
    }


def _breakdown(row: Any) -> dict[str, Any]:
    """CSAT and NPS of one team (ticket surveys) or product (delivery surveys)."""
    nps_value = None
    if row.nps_answers:
        nps_value = metrics.nps(
            {10: row.promoters, 0: row.detractors, 7: row.nps_answers - row.promoters - row.detractors}
        )
    return {
        "key": row.key,
        "sent": row.sent,
        "answered": row.answered,
        "response_rate": rate(row.answered, row.sent),
        "csat_average": _text(None if row.csat_average is None else round(row.csat_average, 2)),
        "nps": _text(nps_value),
    }
