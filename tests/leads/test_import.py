"""Bulk import of leads from CSV: background registration by the worker, progress, a per-row
error report, idempotent by the file's hash, duplicates matched like any other lead."""

from __future__ import annotations

import asyncpg

from tests.conftest import System, auth, wait_until
from tests.leads.org import put_rep

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
