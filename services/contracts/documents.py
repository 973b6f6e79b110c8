"""Rendering contract documents (Jinja2) and keeping every version with its SHA-256."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from services.contracts.domain import Contract
from services.contracts.domain.document import Document

TEMPLATE = "contract.html"
TEMPLATE_VERSION = f"{TEMPLATE}@3"  # bump when the template's wording changes
SUPPLIER = "Salesline 示例有限公司 (Salesline Demo Co., Ltd.)"

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    auto_reload=False,  # templates ship with the code: no stat() of the file on every render
)


@functools.cache
def _contract_template() -> Template:
    return TEMPLATES.get_template(TEMPLATE)


def render_contract(contract: Contract) -> str:
    """The document text of the contract's current terms and revision (no state, no timestamps
    but the drafting date), so rendering unchanged terms gives the same bytes and hash."""
    return _contract_template().render(c=contract, supplier=SUPPLIER)


def next_document(contract: Contract, now: datetime) -> Document | None:
    """The contract's next document version, or None when its rendering has not changed."""
    content = render_contract(contract)
    document = Document.rendered(
        contract_id=contract.id,
        version=contract.document_version + 1,
        revision=contract.revision,
        template=TEMPLATE_VERSION,
        content=content,
        now=now,
    )
    if document.sha256 == contract.document_sha256:
        return None
    contract.attach_document(document)
    return document
