"""Building blocks of the small public pages customers open from a link (survey, signing).

The secret token in the link is the credential, so these pages are public, and marked so
(``PUBLIC``: tests/test_api_safety.py skips only operations saying why). They load nothing
from elsewhere (inline CSS, no scripts; the CSP says so), post plain forms back to themselves,
and speak Chinese or English.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

PUBLIC = {"x-public": "a customer's page: the secret token in the link is the credential"}
LANGUAGES = ("zh", "en")
SECURITY_HEADERS = {
    # Nothing but the page's inline styles; forms post only back here.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the URL holds the secret token
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def choose_language(request: Request, explicit: str | None = None) -> str:
    """``?lang=`` (or the form's ``lang``) wins, else the best ``Accept-Language`` match, else Chinese."""
    for candidate in (explicit, request.query_params.get("lang")):
        if candidate:
            primary = candidate.strip().lower()[:2]
            if primary in LANGUAGES:
                return primary
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(request.headers.get("accept-language", "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower()[:2]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else "zh"


def parse_form(body: bytes) -> dict[str, str]:
    """The browser's urlencoded form; undecodable bytes and NULs can never reach the database."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {key: values[0].replace("\x00", "") for key, values in fields.items() if values}


def page_templates(directory: Path) -> Environment:
    """The Jinja2 environment of a service's page templates (HTML autoescaped)."""
    return Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code: no stat() of the file on every render
    )


def html_page(templates: Environment, template: str, status: int, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        templates.get_template(template).render(**context), status_code=status, headers=SECURITY_HEADERS
    )
