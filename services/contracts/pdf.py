"""A PDF rendering of the signed contract, with fpdf2.

fpdf2 is pure Python (no system libraries, unlike WeasyPrint's Pango/Cairo), maintained, and
installs from PyPI; it renders our document's simple HTML (headings, lists, one table) with
``write_html`` and embeds a subset of a TrueType/OpenType font, so Chinese text needs a CJK font
on the machine (Debian's fonts-noto-cjk; see ``ContractsSettings.pdf_font_path``).

The PDF is rendered from the archive, never from the live contract: the archived document bytes
(hash-verified first) followed by the signatures and the document's SHA-256. Its creation date is
the signing time, so the same archive always renders the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

from services.contracts.config import ContractsSettings
from services.contracts.domain.document import SignedArchive
from shared.errors import Problem

PARTY = {"customer": "买方 Customer", "company": "卖方 Supplier"}


def render_pdf(archive: SignedArchive, settings: ContractsSettings) -> bytes:
    archive.verify()
    regular, bold = Path(settings.pdf_font_path), Path(settings.pdf_bold_font_path)
    if not regular.is_file():
        raise Problem(
            503,
            "PDF font missing",
            "The CJK font for contract PDFs is not installed (fonts-noto-cjk; SALESLINE_CONTRACTS_PDF_FONT_PATH).",
            slug="pdf-font-missing",
        )
    pdf = FPDF(format="A4")
    pdf.set_creation_date(archive.signed_at)
    pdf.set_title(f"{archive.contract_number} (revision {archive.revision})")
    pdf.add_font("cjk", fname=regular, collection_font_number=settings.pdf_font_index)
    pdf.add_font(
        "cjk", style="B", fname=bold if bold.is_file() else regular, collection_font_number=settings.pdf_font_index
    )
    pdf.set_font("cjk", size=10)
    pdf.add_page()
    pdf.write_html(archive.content, font_family="cjk")

    pdf.ln(4)
    pdf.set_font("cjk", style="B", size=11)
    pdf.multi_cell(0, 7, "签署记录 Signatures", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=9)
    for signature in sorted(archive.signatures, key=lambda s: s.party):
        pdf.multi_cell(
            0,
            5,
            f"{PARTY.get(signature.party, signature.party)}: {signature.signer_name} · "
            f"{signature.signed_at.isoformat(timespec='seconds')} · IP {signature.ip or '-'}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.ln(2)
    pdf.multi_cell(
        0,
        5,
        f"文件版本 Document version {archive.document_version} · SHA-256 {archive.document_sha256}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    return bytes(pdf.output())
