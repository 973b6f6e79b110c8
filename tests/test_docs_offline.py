"""Ops networks are often offline: /docs and /redoc must render from the service's own
assets. A real headless Chromium (Debian's package) loads them from a real uvicorn with
every host name but 127.0.0.1 unresolvable, so a CDN reference would leave the page blank."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed (make test installs it)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def orders_api():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "services.orders.main:create_app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the orders API did not start")
    yield base
    process.terminate()
    process.wait(timeout=10)


def rendered_dom(url: str) -> str:
    assert CHROMIUM, "chromium is required (apt-get install chromium)"
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                # Any host but loopback fails to resolve: a CDN asset could not load.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_swagger_ui_renders_offline(orders_api: str) -> None:
    html = httpx.get(f"{orders_api}/docs").text
    assets = re.findall(r'(?:src|href)=["\']([^"\']+)', html)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    dom = rendered_dom(f"{orders_api}/docs")
    assert "Salesline orders" in dom  # the title Swagger UI rendered from /openapi.json
    assert "opblock" in dom and "/v1/orders/{order_id}/deliver" in dom  # operations rendered


def test_redoc_renders_offline(orders_api: str) -> None:
    dom = rendered_dom(f"{orders_api}/redoc")
    assert "Salesline orders" in dom
    assert "redoc-wrap" in dom  # ReDoc's rendered layout, not just the empty page
