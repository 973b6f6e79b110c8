"""Bulk import of leads from CSV: background registration by the worker, progress, a per-row
error report, idempotent by the file's hash, duplicates matched like any other lead."""

from __future__ import annotations

import contextlib
import json
import uuid
from decimal import Decimal

import asyncpg

from services.leads import handlers
from services.leads.config import assignment_policy, load_grading_rules
from services.leads.db import platform_tables
from services.leads.domain import DecisionTimeframe, Lead, LeadSource, NeedFit
from services.leads.handlers import RegisterLead
from shared.auth import Principal
from shared.db import create_engine
from shared.domain import DomainError
from shared.uow import UnitOfWork
from tests.conftest import System, auth, settings_for, spawn, wait_until
from tests.leads import org
from tests.leads.org import FORM, put_rep

MARKETING = auth("mkt-1", "marketing_director")
CSV = {"Content-Type": "text/csv", "X-Filename": "fair.csv"}


async def finished(leads, url: str, *, timeout: float) -> dict:
    async def done():
        body = (await leads.get(url, headers=MARKETING)).json()
        return body if body["status"] == "done" else None

    return await wait_until(done, timeout=timeout, what="the import to finish")


def csv_file(rows: list[str]) -> bytes:
    return ("\ufeffcompany_name,phone,email,region,campaign\n" + "\n".join(rows) + "\n").encode()


async def test_a_csv_imports_in_the_background(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east", capacity=10_000)
    rows = [f"Company {i},,c{i}@example.com,east,fair" for i in range(1200)]
    rows += ["Company 7 again,,C7@Example.com,east,fair", "Bad phone,12345,,east,fair", "有限公司,,,east,fair"]
    content = csv_file(rows)
    started = await leads.post("/v1/lead-imports", content=content, headers={**CSV, **MARKETING})
    assert started.status_code == 202, started.text
    state = started.json()
    assert (state["status"], state["rows_total"], state["rows_done"]) == ("running", 1203, 0)
    again = await leads.post("/v1/lead-imports", content=content, headers={**CSV, **MARKETING})
    assert again.status_code == 200 and again.json()["id"] == state["id"]  # same file, same import

    await system.start_worker("leads")
    url = f"/v1/lead-imports/{state['id']}"

    done = await finished(leads, url, timeout=120)
    assert (done["rows_done"], done["created"], done["merged"], done["rejected"]) == (1203, 1200, 1, 2)
    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads WHERE owner_id = 'r1'") == 1201
    assert await clean_db.fetchval("SELECT count(*) FROM leads.lead_import_rows") == 0
    report = await leads.get(f"{url}/errors", headers=MARKETING)
    assert report.headers["content-type"].startswith("text/csv")
    lines = report.text.strip().splitlines()
    assert lines[0] == "row,error" and [line.split(",")[0] for line in lines[1:]] == ["1202", "1203"]
    assert (await leads.get(url, headers=auth("mkt-2", "marketing_director"))).status_code == 404
    assert (await leads.get(url, headers=auth("r1", "sales_rep"))).status_code == 403


async def test_bad_files_are_refused(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    for content, headers, status in [
        (b"name,fax\nA,1\n", CSV, 422),
        (b"\xff\xfe\x00bad", CSV, 422),
        (b"company_name\nA\n", {"Content-Type": "application/json"}, 415),
    ]:
        response = await leads.post("/v1/lead-imports", content=content, headers={**headers, **MARKETING})
        assert response.status_code == status, response.text
    assert await clean_db.fetchval("SELECT count(*) FROM leads.lead_imports") == 0


async def test_an_xlsx_imports_like_a_csv(system: System, clean_db: asyncpg.Connection) -> None:
    import io

    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["company_name", "phone", "region"])
    sheet.append(["ＡＢＣ科技有限公司", "138 0013 8000", "east"])
    sheet.append(["Other Co", 8613800138001, None])  # a number cell
    sheet.append(["Bad", "12345", None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    leads = await system.client("leads")
    xlsx = {"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
    started = await leads.post("/v1/lead-imports", content=buffer.getvalue(), headers={**xlsx, **MARKETING})
    assert started.status_code == 202, started.text
    await system.start_worker("leads")
    url = f"/v1/lead-imports/{started.json()['id']}"

    done = await finished(leads, url, timeout=60)
    assert (done["rows_total"], done["created"], done["merged"], done["rejected"]) == (3, 2, 0, 1)
    phones = {r["phone"] for r in await clean_db.fetch("SELECT phone FROM leads.leads")}
    assert phones == {"+8613800138000", "+8613800138001"}
    not_xlsx = await leads.post("/v1/lead-imports", content=b"company_name\nA\n", headers={**xlsx, **MARKETING})
    assert not_xlsx.status_code == 422


async def test_an_import_registers_like_one_lead_at_a_time(
    system: System, clean_db: asyncpg.Connection, monkeypatch
) -> None:
    """The chunked import and register_lead, row after row, leave the same leads, owners, pool,
    customer keys, round-robin cursors, first-contact timers and events: within the file and
    across chunks (4 rows each here), against leads registered before, up to the reps' capacity."""
    monkeypatch.setattr(handlers, "IMPORT_CHUNK", 4)
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east", capacity=3)
    await put_rep(leads, "r2", region="east", capacity=6)
    await put_rep(leads, "r3", region="west", capacity=100)
    await put_rep(leads, "r4", region="east", capacity=100, status="on_leave")
    rows = ["Pool Co again,,POOL@example.com,east,fair", "Known Co Ltd,+86 138 0013 8000,,east,fair"]
    rows += ["ACME Account Co.,,ACME@Example.com,east,fair"]
    rows += [f"East {i},,e{i}@example.com,east,fair" for i in range(12)]
    rows += ["East 2 Co.,,E2@Example.com,east,fair", "Bad phone,12345,,east,fair", "ＥＡＳＴ　３,,,east,fair"]
    rows += [f"West {i},,w{i}@example.com,west,fair" for i in range(3)] + ["Nowhere Ltd,,,,fair"]
    content = csv_file(rows)

    async def registered_before() -> None:  # a rep's customers (one an account), a web-form lead in the pool
        rep = Principal(sub="r3", roles=frozenset({"sales_rep"}))
        await register(RegisterLead(source=LeadSource.MANUAL, company_name="Known Co", phone="13800138000"), rep)
        acme = await register(
            RegisterLead(
                source=LeadSource.MANUAL,
                company_name="Acme",
                email="acme@example.com",
                budget=Decimal("200000"),
                decision_timeframe=DecisionTimeframe.WITHIN_3_MONTHS,
                need_fit=NeedFit.HIGH,
            ),
            rep,
        )
        converted = await leads.post(
            f"/v1/leads/{acme.id}/convert", json={"opportunity_name": "Pumps"}, headers=auth("r3", "sales_rep")
        )
        assert converted.status_code == 201, converted.text
        await register(
            RegisterLead(source=LeadSource.WEB_FORM, company_name="Pool Co", email="pool@example.com", region="north"),
            FORM,
        )

    await registered_before()
    started = await leads.post("/v1/lead-imports", content=content, headers={**CSV, **MARKETING})
    await system.start_worker("leads")
    done = await finished(leads, f"/v1/lead-imports/{started.json()['id']}", timeout=60)
    assert (done["rows_total"], done["created"], done["merged"], done["rejected"]) == (22, 16, 5, 1)
    imported = await outcome(clean_db)
    await system.stop_worker("leads")

    await clean_db.execute(
        "TRUNCATE leads.leads, leads.customer_keys, leads.outbox, leads.timers, leads.assignment_cursors, "
        "leads.ownership_conflicts, leads.lead_assignments"
    )
    await registered_before()
    importer = Principal(sub=f"import:{started.json()['id']}", roles=frozenset({"integration"}))
    for row in handlers.parse_csv(content):
        with contextlib.suppress(DomainError):
            await register(handlers.import_command(row), importer)
    assert imported == await outcome(clean_db)
    # East: r1 and r2 up to their capacity (3 and 6), then the pool; repeats follow their customer's
    # owner (r1 and r2 beyond capacity: they own them); the lead without a region goes to r3 (west).
    assert imported["owners"] == {"r1": 4, "r2": 7, "r3": 8, None: 5}
    acme_again = next(lead for lead in imported["leads"] if lead["company_name"] == "ACME Account Co.")
    assert (acme_again["matched_account_id"], acme_again["duplicate_of_lead_id"]) == ("Acme", "Acme")
    assert len(imported["assignments"]) == 13  # one open assignment per lead the rules gave a rep


async def register(cmd: RegisterLead, principal: Principal) -> Lead:
    settings = settings_for("leads")
    engine = create_engine(settings)
    try:
        return await handlers.register_lead(
            cmd,
            principal,
            UnitOfWork(engine, platform_tables, settings.source),
            rules=load_grading_rules(settings.grading_rules_path),
            phone_region=settings.phone_region,
            policy=assignment_policy(settings),
        )
    finally:
        await engine.dispose()


async def outcome(db: asyncpg.Connection) -> dict:
    """Everything a registration decides, with lead and account ids replaced by the companies' names."""
    name = {r["id"]: r["company_name"] for r in await db.fetch("SELECT id, company_name FROM leads.leads")}
    name |= {r["id"]: r["name"] for r in await db.fetch("SELECT id, name FROM leads.accounts")}
    leads = await db.fetch(
        """SELECT company_name, owner_id, team, registered_by, duplicate_of_lead_id, matched_account_id,
                  ownership_conflict, grade, phone, email, region, assigned_at IS NOT NULL AS assigned,
                  pooled_at IS NOT NULL AS pooled, version
           FROM leads.leads ORDER BY created_at"""
    )
    keys = await db.fetch("SELECT kind, value, owner_id, lead_id, account_id FROM leads.customer_keys ORDER BY 1, 2")
    events = await db.fetch("SELECT event_type, envelope::jsonb -> 'data' AS data FROM leads.outbox ORDER BY id")
    timers = await db.fetch("SELECT payload FROM leads.timers WHERE kind = 'lead.first_contact'")
    history = await db.fetch(
        """SELECT lead_id, rep_id, team, region, source, first_contact_due_at - assigned_at AS due_in, ended_at
           FROM leads.lead_assignments ORDER BY assigned_at"""
    )
    owners: dict[str | None, int] = {}
    for lead in leads:
        owners[lead["owner_id"]] = owners.get(lead["owner_id"], 0) + 1
    return {
        "leads": [
            {
                **dict(r),
                "duplicate_of_lead_id": name.get(r["duplicate_of_lead_id"]),
                "matched_account_id": name.get(r["matched_account_id"]),
            }
            for r in leads
        ],
        "owners": owners,
        "keys": [(k["kind"], k["value"], k["owner_id"], name[k["lead_id"]], name.get(k["account_id"])) for k in keys],
        "cursors": sorted(map(tuple, await db.fetch("SELECT rule, last_rep_id FROM leads.assignment_cursors"))),
        "events": [
            (e["event_type"], name.get(uuid.UUID(data["lead_id"])), data.get("owner_id"))
            for e in events
            if "lead_id" in (data := json.loads(e["data"]))
        ],
        "timers": sorted(
            (name[uuid.UUID(json.loads(t["payload"])["lead_id"])], json.loads(t["payload"])["owner_id"]) for t in timers
        ),
        "assignments": [{**dict(h), "lead_id": name[h["lead_id"]]} for h in history],
    }


async def test_a_worker_killed_mid_import_resumes_without_losing_or_doubling_rows(
    system: System, clean_db: asyncpg.Connection
) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east", capacity=100_000)
    total = 4000
    rows = [
        f"Company {i - 5},,C{i - 5}@Example.com,east,fair"
        if i % 10 == 9
        else f"Company {i},,c{i}@example.com,east,fair"
        for i in range(total)
    ]
    started = await leads.post("/v1/lead-imports", content=csv_file(rows), headers={**CSV, **MARKETING})
    import_id = started.json()["id"]
    progress = "SELECT rows_done FROM leads.lead_imports WHERE id = $1"

    worker = spawn("services.leads.worker", log_name="leads-worker-import-kill")
    try:
        await wait_until(
            lambda: _done_at_least(clean_db, import_id, 1000), timeout=120, interval=0.02, what="1,000 rows done"
        )
        worker.kill()  # SIGKILL mid-import: the chunk in flight dies with its transaction
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    at_kill = await clean_db.fetchval(progress, uuid.UUID(import_id))
    assert 1000 <= at_kill < total, "the kill should land mid-import"
    # Only whole chunks were committed: their leads, and nothing of the one in flight.
    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads") == at_kill

    await system.start_worker("leads")
    done = await finished(leads, f"/v1/lead-imports/{import_id}", timeout=120)
    assert (done["rows_done"], done["created"], done["merged"], done["rejected"]) == (total, 3600, 400, 0)
    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads") == total
    assert await clean_db.fetchval("SELECT count(DISTINCT email) FROM leads.leads") == 3600
    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads WHERE duplicate_of_lead_id IS NULL") == 3600
    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads WHERE owner_id = 'r1'") == total
    assert await clean_db.fetchval("SELECT count(*) FROM leads.customer_keys") == 7200  # e-mail and name each
    events = dict(await clean_db.fetch("SELECT event_type, count(*) FROM leads.outbox GROUP BY event_type"))
    assert events == {"lead.created.v1": total, "lead.assigned.v1": 3600}
    timers = "SELECT count(*) FROM leads.timers WHERE kind = 'lead.first_contact'"
    assert await clean_db.fetchval(timers) == 3600
    assert await clean_db.fetchval("SELECT count(*) FROM leads.lead_assignments WHERE ended_at IS NULL") == 3600
    assert await clean_db.fetchval("SELECT count(*) FROM leads.lead_import_rows") == 0


async def _done_at_least(db: asyncpg.Connection, import_id: str, n: int) -> bool:
    done = await db.fetchval("SELECT rows_done FROM leads.lead_imports WHERE id = $1", uuid.UUID(import_id))
    return done >= n


async def test_a_chunk_of_bad_rows_only_is_reported_and_the_import_goes_on(
    system: System, clean_db: asyncpg.Connection, monkeypatch
) -> None:
    monkeypatch.setattr(handlers, "IMPORT_CHUNK", 2)
    leads = await system.client("leads")
    rows = ["Bad 1,12345,,east,fair", "Bad 2,,not-an-email,east,fair", "Good Co,,good@example.com,east,fair"]
    started = await leads.post("/v1/lead-imports", content=csv_file(rows), headers={**CSV, **MARKETING})
    await system.start_worker("leads")
    url = f"/v1/lead-imports/{started.json()['id']}"
    done = await finished(leads, url, timeout=60)
    assert (done["rows_done"], done["created"], done["merged"], done["rejected"]) == (3, 1, 0, 2)
    assert [r["company_name"] for r in await clean_db.fetch("SELECT company_name FROM leads.leads")] == ["Good Co"]
    report = (await leads.get(f"{url}/errors", headers=MARKETING)).text.strip().splitlines()
    assert [line.split(",")[0] for line in report[1:]] == ["1", "2"]


async def test_an_import_and_concurrent_registrations_of_the_same_customers_agree(
    system: System, clean_db: asyncpg.Connection
) -> None:
    """While the worker imports 2,000 companies, web forms register 300 of them again at once:
    each customer has one first registration, whichever path won it, and the other lead is its
    duplicate with the same owner; no chunk failed (a deadlock would have been retried)."""
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east", capacity=100_000)
    await put_rep(leads, "r2", region="east", capacity=100_000)
    rows = [f"Company {i},,,east,fair" for i in range(2000)]
    started = await leads.post("/v1/lead-imports", content=csv_file(rows), headers={**CSV, **MARKETING})
    await system.start_worker("leads")
    await org.register_many(300, prefix="Company", region="east")
    await finished(leads, f"/v1/lead-imports/{started.json()['id']}", timeout=120)

    assert await clean_db.fetchval("SELECT count(*) FROM leads.leads") == 2300
    assert await clean_db.fetchval("SELECT count(*) FROM leads.customer_keys") == 2000
    firsts = await clean_db.fetchval("SELECT count(*) FROM leads.leads WHERE duplicate_of_lead_id IS NULL")
    assert firsts == 2000
    pairs = await clean_db.fetch(
        """SELECT d.owner_id AS owner, f.owner_id AS first_owner, k.lead_id = f.id AS first_has_the_key
           FROM leads.leads d JOIN leads.leads f ON f.id = d.duplicate_of_lead_id
           JOIN leads.customer_keys k ON k.kind = 'name' AND k.value = lower(replace(f.company_name, ' ', ''))"""
    )
    assert len(pairs) == 300 and all(p["owner"] == p["first_owner"] and p["first_has_the_key"] for p in pairs)
    won = await clean_db.fetch(
        """SELECT f.registered_by = 'web-form' AS by_form, count(*) AS n FROM leads.leads d
           JOIN leads.leads f ON f.id = d.duplicate_of_lead_id GROUP BY 1"""
    )
    assert len(won) == 2, f"each path should win some customers (overlap): {won}"
    failed = "SELECT count(*) FROM leads.timers WHERE kind = 'lead_import.chunk' AND last_error IS NOT NULL"
    assert await clean_db.fetchval(failed) == 0
    assert await clean_db.fetchval("SELECT count(*) FROM leads.lead_assignments") == 2000
