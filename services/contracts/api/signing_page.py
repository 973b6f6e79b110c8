"""The signing page: server-rendered HTML (Jinja2) that a signatory opens from their link.

Public on purpose: the secret token in the link is the credential. It shows the document (the
exact stored bytes, verified against their SHA-256 first), the signatory types their name and
confirms, and a plain form POST signs; no scripts and no external assets (the CSP says so), one
column that fits a phone, Chinese or English. Expired, used, revoked and superseded links, and a
document failing its hash check, get a page that says so and change nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse

from services.contracts import handlers
from services.contracts.domain import ContractStatus
from services.contracts.domain.document import DocumentTampered
from services.contracts.domain.signing import LinkRefused, SignatureRefused
from shared.domain import InvalidTransition, NotFound
from shared.pages import PUBLIC, choose_language, html_page, page_templates, parse_form
from shared.service import get_uow
from shared.uow import UnitOfWork

PATH = "/v1/contracts/signing"
router = APIRouter(prefix=PATH, tags=["signing page (signatories)"])

TEMPLATES = page_templates(Path(__file__).resolve().parent.parent / "templates")
Uow = Annotated[UnitOfWork, Depends(get_uow)]

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "html_lang": "zh-CN",
        "title": "签署合同",
        "switch": "English",
        "party_customer": "买方",
        "party_company": "卖方",
        "intro": "{name}（{party}签署人），请阅读以下合同，确认无误后输入您的姓名并签署。",
        "digest": "文件摘要",
        "name": "请输入您的姓名（与合同签署人一致）",
        "confirm": "我已阅读并同意本合同的全部条款，同意以电子方式签署。",
        "sign": "签署合同",
        "error_name": "请输入与合同签署人一致的姓名。",
        "error_confirm": "请勾选确认后再签署。",
        "signed_title": "签署完成",
        "signed": "感谢您的签署，双方均已签署，合同已生效。",
        "recorded_title": "您的签署已记录",
        "recorded": "感谢您的签署，正在等待另一方签署。",
        "used_title": "此链接已使用",
        "used": "此签署链接已经用于签署，每个链接只能使用一次。",
        "expired_title": "此签署链接已过期",
        "expired": "此链接已超过有效期。请联系发送方重新发送签署链接。",
        "revoked_title": "此签署链接已撤销",
        "revoked": "发送方已撤销此链接。如需签署，请联系发送方获取新链接。",
        "superseded_title": "合同内容已变更",
        "superseded": "此链接对应的合同版本已不再有效。请等待发送方发送新版本的签署链接。",
        "unknown_title": "链接无效",
        "unknown": "此签署链接无效，请检查链接是否完整。",
        "tampered_title": "无法验证合同文件",
        "tampered": "合同文件未通过完整性校验，请勿签署，并联系发送方。",
    },
    "en": {
        "html_lang": "en",
        "title": "Sign the contract",
        "switch": "中文",
        "party_customer": "customer",
        "party_company": "supplier",
        "intro": "{name} (signing for the {party}), please read the contract below; then type your name and sign.",
        "digest": "Document digest",
        "name": "Type your name (as the contract's signatory)",
        "confirm": "I have read and agree to all terms of this contract and sign it electronically.",
        "sign": "Sign the contract",
        "error_name": "Type your name exactly as the contract names its signatory.",
        "error_confirm": "Tick the confirmation to sign.",
        "signed_title": "Contract signed",
        "signed": "Thank you. Both parties have signed; the contract is in force.",
        "recorded_title": "Your signature is recorded",
        "recorded": "Thank you. The contract is waiting for the other party's signature.",
        "used_title": "This link was already used",
        "used": "This signing link has already been used to sign; each link works once.",
        "expired_title": "This signing link has expired",
        "expired": "This link is past its validity. Ask the sender for a new signing link.",
        "revoked_title": "This signing link was revoked",
        "revoked": "The sender revoked this link. Ask the sender for a new one if you are to sign.",
        "superseded_title": "The contract has changed",
        "superseded": "The contract version this link was for no longer applies. Wait for the link to the new version.",
        "unknown_title": "Link not valid",
        "unknown": "This signing link is not valid. Check that it is complete.",
        "tampered_title": "The contract document could not be verified",
        "tampered": "The document failed its integrity check. Do not sign; contact the sender.",
    },
}
STATUS = {"used": 410, "expired": 410, "revoked": 410, "superseded": 410, "unknown": 404, "tampered": 409}


def render(template: str, lang: str, status: int, **context: Any) -> HTMLResponse:
    return html_page(TEMPLATES, template, status, t=TEXT[lang], lang=lang, **context)


def _refusal(exc: Exception, lang: str) -> HTMLResponse:
    if isinstance(exc, LinkRefused):
        kind = exc.reason if exc.reason in STATUS else "unknown"
    elif isinstance(exc, DocumentTampered):
        kind = "tampered"
    elif isinstance(exc, InvalidTransition):
        kind = "superseded"
    else:
        kind = "unknown"
    return render("signing_message.html", lang, STATUS[kind], kind=kind)


REFUSED = (LinkRefused, DocumentTampered, InvalidTransition, NotFound)


@router.get("/{token}", response_class=HTMLResponse, summary="The signatory's signing page", openapi_extra=PUBLIC)
async def signing_page(token: str, request: Request, uow: Uow) -> HTMLResponse:
    lang = choose_language(request)
    try:
        view = await handlers.open_signing_link(token, uow)
    except REFUSED as exc:
        return _refusal(exc, lang)
    return render("signing.html", lang, 200, link=view.link, document=view.document, errors=[], values={})


@router.post("/{token}", response_class=HTMLResponse, summary="The signatory signs (a form post)", openapi_extra=PUBLIC)
async def sign(token: str, request: Request, uow: Uow) -> HTMLResponse:
    form = parse_form(await request.body())
    lang = choose_language(request, form.get("lang"))
    cmd = handlers.SignWithLink(
        token=token,
        typed_name=form.get("name", "")[:200],
        confirmed=form.get("confirm") == "yes",
        seen_sha256=form.get("document_sha256"),
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    try:
        contract = await handlers.sign_with_link(cmd, uow)
    except SignatureRefused as exc:
        try:
            view = await handlers.open_signing_link(token, uow)
        except REFUSED as refused:
            return _refusal(refused, lang)
        return render(
            "signing.html", lang, 422, link=view.link, document=view.document, errors=[exc.field], values=form
        )
    except REFUSED as exc:
        return _refusal(exc, lang)
    kind = "signed" if contract.status == ContractStatus.SIGNED else "recorded"
    return render("signing_message.html", lang, 200, kind=kind, digest=contract.document_sha256)
