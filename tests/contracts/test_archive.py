"""The archive: the signed document both parties signed, kept append-only and hash-verified,
downloadable as is and as a PDF (fpdf2, with the CJK font embedded)."""

from __future__ import annotations

import base64
import hashlib
import re
import zlib

import asyncpg
import pytest

from tests.conftest import System
from tests.contracts.test_documents import tamper
from tests.contracts.test_review_api import OTHER_REP, REP, body, draft
from tests.contracts.test_signing_page import sign_through_api


def pdf_text_units(pdf: bytes) -> str:
    """Every stream of the PDF, inflated where compressed (fonts, ToUnicode maps, page content)."""
    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(match.group(1)).decode("latin-1"))
        except zlib.error:
            out.append(match.group(1).decode("latin-1"))
    return "\n".join(out)


async def test_the_signed_document_is_archived_and_downloadable(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    drafted = await draft(contracts, body())
    contract_id = drafted.json()["id"]
    url = f"/v1/contracts/{contract_id}/archive"
    assert (await contracts.get(url, headers=REP)).status_code == 404  # nothing signed yet

    signed = await sign_through_api(contracts, drafted)
    archive = (await contracts.get(url, headers=REP)).json()
    assert archive["document_sha256"] == signed["document_sha256"] and archive["revision"] == 1
    assert sorted(s["party"] for s in archive["signatures"]) == ["company", "customer"]
    assert all(s["document_sha256"] == archive["document_sha256"] for s in archive["signatures"])
    assert (await contracts.get(url, headers=OTHER_REP)).status_code == 404

    document = await contracts.get(archive["document_url"], headers=REP)
    digest = hashlib.sha256(document.content).digest()
    assert digest.hex() == archive["document_sha256"]
    assert document.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"

    pdf = await contracts.get(archive["pdf_url"], headers=REP)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["X-Document-SHA256"] == archive["document_sha256"]
    pdf_digest = base64.b64encode(hashlib.sha256(pdf.content).digest()).decode()
    assert pdf.headers["Repr-Digest"] == f"sha-256=:{pdf_digest}:"
    assert signed["number"] in pdf.headers["Content-Disposition"]
    streams = pdf_text_units(pdf.content)
    # The CJK font is embedded and maps the Chinese of the document (销 U+9500, 合 U+5408, 同 U+540C).
    assert b"NotoSansCJK" in pdf.content
    for code_point in ("9500", "5408", "540C"):
        assert re.search(rf"<{code_point}>", streams, re.I), code_point
    again = await contracts.get(archive["pdf_url"], headers=REP)
    assert again.content == pdf.content  # the same archive renders the same bytes


async def test_the_archive_is_append_only_and_tampering_is_detected(
    system: System, clean_db: asyncpg.Connection
) -> None:
    contracts = await system.client("contracts")
    signed = await sign_through_api(contracts, await draft(contracts, body()))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await clean_db.execute("UPDATE contracts.contract_archives SET content = 'forged'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await clean_db.execute("DELETE FROM contracts.contract_archives")

    await tamper(clean_db, "UPDATE contracts.contract_archives SET content = replace(content, '3300.00', '33.00')")
    url = f"/v1/contracts/{signed['id']}/archive"
    for path in (url, f"{url}/document", f"{url}/pdf"):
        response = await contracts.get(path, headers=REP)
        assert response.status_code == 409, (path, response.text)
        assert "33.00" not in response.text
