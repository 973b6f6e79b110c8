"""The signing page: both parties sign through their links, the last signature signs the contract
(``contract.signed``); refused links and a tampered document get a clear page and change nothing.
Driven over HTTP (real PostgreSQL) and, for the customer on a phone, in a real headless Chromium."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import asyncpg
import httpx
import pytest

from shared.events import ContractSigned
from tests.browser import CHROMIUM, free_port, launch, serve_api, tap
from tests.conftest import ROOT, System, clear_settings_caches
from tests.contracts.test_documents import tamper
from tests.contracts.test_review_api import LEGAL, REP, act, events
from tests.contracts.test_signing_links import SIGNATORIES, approved_contract

ARTIFACTS = ROOT / ".run" / "test" / "artifacts"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def out_for_signature(
    contracts: httpx.AsyncClient, approved: httpx.Response | None = None
) -> tuple[dict, dict[str, dict]]:
    approved = approved or await approved_contract(contracts)
    sent = await act(contracts, approved, "send-for-signature", REP, **SIGNATORIES)
    return sent.json()["contract"], {link["party"]: link for link in sent.json()["links"]}


async def sign_through_api(contracts: httpx.AsyncClient, drafted: httpx.Response) -> dict:
    """A drafted contract (within the rep's authority) through review, sending and both parties'
    signing pages, over HTTP; returns the signed contract."""
    submitted = await act(contracts, drafted, "submit", REP)
    approved = await act(contracts, submitted, "review", LEGAL, decision="approve")
    contract, links = await out_for_signature(contracts, approved)
    for party, name in (("customer", "Li Lei"), ("company", "Wang Fang")):
        assert (await sign(contracts, links[party], name)).status_code == 200
    signed = (await contracts.get(f"/v1/contracts/{contract['id']}", headers=REP)).json()
    assert signed["status"] == "signed"
    return signed


def page(link: dict) -> str:
    return httpx.URL(link["url"]).path


async def sign(contracts: httpx.AsyncClient, link: dict, name: str, *, confirm: bool = True) -> httpx.Response:
    form = {"name": name, "lang": "en", **({"confirm": "yes"} if confirm else {})}
    return await contracts.post(page(link), data=form, headers={**FORM, "User-Agent": "test-phone/1.0"})


async def test_both_parties_sign_through_their_links(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    contract, links = await out_for_signature(contracts)
    assert page(links["customer"]) == f"/v1/contracts/signing/{links['customer']['token']}"

    shown = await contracts.get(page(links["customer"]), headers={"Accept-Language": "zh-CN"})
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in shown.headers["content-security-policy"]
    assert contract["number"] in shown.text and contract["document_sha256"] in shown.text and "签署合同" in shown.text
    assert "<script" not in shown.text and "http" not in shown.text.replace(links["customer"]["token"], "")

    wrong = await sign(contracts, links["customer"], "Han Meimei")
    assert wrong.status_code == 422 and "exactly as the contract names its signatory" in wrong.text
    unconfirmed = await sign(contracts, links["customer"], "Li Lei", confirm=False)
    assert unconfirmed.status_code == 422 and "Tick the confirmation" in unconfirmed.text
    assert await clean_db.fetchval("SELECT jsonb_array_length(signatures) FROM contracts.contracts") == 0
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.signing_links WHERE used_at IS NOT NULL") == 0

    recorded = await sign(contracts, links["customer"], "  li   LEI ")
    assert recorded.status_code == 200 and "waiting for the other party" in recorded.text
    reused = await contracts.get(page(links["customer"]), params={"lang": "en"})
    assert reused.status_code == 410 and "already been used" in reused.text
    again = await sign(contracts, links["customer"], "Li Lei")
    assert again.status_code == 410
    current = (await contracts.get(f"/v1/contracts/{contract['id']}", headers=REP)).json()
    assert current["status"] == "out_for_signature" and await events(clean_db, "contract.signed") == []

    signed = await sign(contracts, links["company"], "Wang Fang")
    assert signed.status_code == 200 and "Both parties have signed" in signed.text
    current = (await contracts.get(f"/v1/contracts/{contract['id']}", headers=REP)).json()
    assert current["status"] == "signed" and current["signed_at"]
    signatures = {s["party"]: s for s in current["signatures"]}
    assert signatures["customer"]["signer_name"] == "li LEI" and signatures["company"]["signer_name"] == "Wang Fang"
    for signature in signatures.values():
        assert signature["document_sha256"] == contract["document_sha256"] and signature["document_version"] == 1
        assert signature["user_agent"] == "test-phone/1.0" and signature["ip"] and signature["signed_at"]

    (event,) = await events(clean_db, "contract.signed")
    signed_event = ContractSigned.model_validate(event)
    assert str(signed_event.contract_id) == contract["id"] and signed_event.customer_id == "acme"
    assert [line.sku for line in signed_event.lines] == ["PUMP-1", "SVC-1"]
    assert [line.warranty_months for line in signed_event.lines] == [12, 0]
    assert (str(signed_event.total_amount), signed_event.payment_terms) == (current["total_amount"], "net 30")
    assert signed_event.contact is not None and signed_event.contact.name == "Li Lei"
    assert (signed_event.region, signed_event.delivery_address) == ("east", "1 Century Ave, Shanghai")


async def test_refused_links_get_a_clear_page_and_change_nothing(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    contract, links = await out_for_signature(contracts)
    en = {"Accept-Language": "en"}

    unknown = await contracts.get("/v1/contracts/signing/not-a-token", headers=en)
    assert unknown.status_code == 404 and "not valid" in unknown.text

    await clean_db.execute("UPDATE contracts.signing_links SET expires_at = now() - interval '1 second'")
    expired = await contracts.get(page(links["customer"]), headers=en)
    assert expired.status_code == 410 and "expired" in expired.text
    assert (await sign(contracts, links["customer"], "Li Lei")).status_code == 410
    await clean_db.execute("UPDATE contracts.signing_links SET expires_at = now() + interval '1 day'")

    revoke = f"/v1/contracts/{contract['id']}/signing-links/{links['company']['id']}/revoke"
    assert (await contracts.post(revoke, headers=REP)).status_code == 200
    revoked = await contracts.get(page(links["company"]), headers=en)
    assert revoked.status_code == 410 and "revoked" in revoked.text
    refused = await contracts.post(page(links["company"]), data={"name": "Wang Fang", "confirm": "yes"}, headers=FORM)
    assert refused.status_code == 410 and "已撤销" in refused.text

    # The document was shown, then changed before the signer pressed "sign".
    stale = await contracts.post(
        page(links["customer"]), data={"name": "Li Lei", "confirm": "yes", "document_sha256": "0" * 64}, headers=FORM
    )
    assert stale.status_code == 410 and "合同内容已变更" in stale.text
    assert await clean_db.fetchval("SELECT jsonb_array_length(signatures) FROM contracts.contracts") == 0
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.signing_links WHERE used_at IS NOT NULL") == 0


async def test_a_tampered_document_is_detected_and_not_signed(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    _, links = await out_for_signature(contracts)
    await tamper(clean_db, "UPDATE contracts.contract_documents SET content = replace(content, '3300.00', '330.00')")
    shown = await contracts.get(page(links["customer"]), headers={"Accept-Language": "en"})
    assert shown.status_code == 409 and "could not be verified" in shown.text and "330.00" not in shown.text
    posted = await sign(contracts, links["customer"], "Li Lei")
    assert posted.status_code == 409
    assert await clean_db.fetchval("SELECT jsonb_array_length(signatures) FROM contracts.contracts") == 0
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.signing_links WHERE used_at IS NOT NULL") == 0


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
async def test_a_customer_signs_on_a_phone_in_chromium(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("SALESLINE_CONTRACTS_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    clear_settings_caches()
    contracts = await system.client("contracts")
    contract, links = await out_for_signature(contracts)
    link = links["customer"]["url"]
    assert link.startswith(f"http://127.0.0.1:{port}/v1/contracts/signing/")

    with serve_api("contracts", port):
        async with launch(phone=True, accept_language="zh-CN,zh") as browser:
            await browser.navigate(link)
            assert await browser.evaluate("document.title") == "签署合同"
            assert await browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            text = await browser.evaluate("document.body.innerText")
            assert contract["number"] in text and "1 Century Ave, Shanghai" in text
            await tap(browser, "#name")
            await browser.call("Input.insertText", text="Li Lei")
            await tap(browser, "input[name=confirm]")
            await browser.screenshot(ARTIFACTS / "signing_page_filled.png")
            browser.events.clear()
            await tap(browser, "button[type=submit]")
            await browser.wait_for_event("Page.loadEventFired")
            assert "您的签署已记录" in await browser.evaluate("document.body.innerText")
            await browser.screenshot(ARTIFACTS / "signing_page_signed.png")
            await browser.navigate(link)  # the customer opens the link again
            assert "此链接已使用" in await browser.evaluate("document.body.innerText")

    row = await clean_db.fetchrow("SELECT status, signatures FROM contracts.contracts")
    [signature] = json.loads(row["signatures"])
    assert row["status"] == "out_for_signature" and signature["party"] == "customer"
    assert signature["ip"] == "127.0.0.1" and "Chrome" in signature["user_agent"]
    assert signature["document_sha256"] == contract["document_sha256"]
    served = await contracts.get(f"/v1/contracts/{contract['id']}/documents/1", headers=REP)
    assert hashlib.sha256(served.content).hexdigest() == signature["document_sha256"]
    assert (ARTIFACTS / "signing_page_filled.png").stat().st_size > 5000


async def test_both_parties_signing_at_once_sign_it_once(system: System, clean_db: asyncpg.Connection) -> None:
    contracts = await system.client("contracts")
    contract, links = await out_for_signature(contracts)
    customer, company = await asyncio.gather(
        sign(contracts, links["customer"], "Li Lei"), sign(contracts, links["company"], "Wang Fang")
    )
    assert customer.status_code == company.status_code == 200
    assert sum("Both parties have signed" in r.text for r in (customer, company)) == 1
    assert len(await events(clean_db, "contract.signed")) == 1
    assert await clean_db.fetchval("SELECT count(*) FROM contracts.contract_archives") == 1
    current = (await contracts.get(f"/v1/contracts/{contract['id']}", headers=REP)).json()
    assert current["status"] == "signed" and len(current["signatures"]) == 2
