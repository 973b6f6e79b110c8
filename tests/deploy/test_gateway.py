"""The gateway: a real nginx, rendered from the services' routers, in front of real uvicorn
processes of every service (two replicas of orders)."""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deploy.gateway import OPS_PATHS, owner_of, route_map, service_paths
from shared.migrate import SERVICES
from tests.browser import CHROMIUM, launch
from tests.conftest import ROOT, auth

pytestmark = pytest.mark.skipif(
    not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)), reason="nginx not installed (make install)"
)


def test_every_v1_route_of_every_app_goes_to_its_owner() -> None:
    routes = route_map()
    checked = 0
    for service in SERVICES:
        for path in service_paths(service):
            if path.startswith("/v1/"):
                assert owner_of(path, routes) == service, path
                checked += 1
            else:
                assert path.lstrip("/") in OPS_PATHS or path == "/metrics", f"{service}: {path} is not routed"
    assert checked > 20
    assert all(routes.values()), routes  # every service serves something through the gateway


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base_ports(count: int) -> list[int]:
    """``count`` ports p with p and p + 100 free (replica 1 listens on port + 100, as in make run)."""
    while True:
        base = random.randrange(20000, 40000, 10)
        ports = [base + i for i in range(count)]
        if all(_free(p) and _free(p + 100) for p in ports):
            return ports


@dataclass
class Gateway:
    url: str
    ports: dict[str, int]
    directory: Path

    def upstream_of(self, request_id: str) -> str:
        """The upstream that answered the request with this id (nginx logs every one it tried)."""
        for _ in range(50):
            for line in (self.directory / "logs" / "access.log").read_text().splitlines():
                if f"request_id={request_id} " in line:
                    return line.split("upstream=")[1].split(" time=")[0].split(", ")[-1]
            time.sleep(0.05)
        raise AssertionError(f"request {request_id} not in the access log")


def _wait_ok(url: str, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s")


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    *service_ports, gateway_port = _free_base_ports(len(SERVICES) + 1)
    ports = dict(zip(SERVICES, service_ports, strict=True))
    env = dict(os.environ, PYTHONPATH=str(ROOT), SALESLINE_LOG_LEVEL="WARNING")
    env.update({f"SALESLINE_{s.upper()}_PORT": str(p) for s, p in ports.items()})
    directory = Path(tempfile.mkdtemp(prefix="salesline-gateway-"))
    directory.chmod(0o755)  # nginx runs as www-data when we are root
    log = (directory / "processes.log").open("ab")
    # Replica 0 of every service, and replica 1 of orders: the gateway is rendered for two.
    apis = [*ports.items(), ("orders", ports["orders"] + 100)]
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--factory"]
    procs = [
        subprocess.Popen(
            [*uvicorn, f"services.{s}.main:create_app", "--port", str(p)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        for s, p in apis
    ]
    gateway_run = [sys.executable, "-m", "deploy.gateway", "run", "--replicas", "2"]
    nginx = subprocess.Popen(
        [*gateway_run, "--dir", str(directory / "nginx"), "--port", str(gateway_port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        for _, port in apis:
            _wait_ok(f"http://127.0.0.1:{port}/readyz", [*procs, nginx])
        _wait_ok(f"http://127.0.0.1:{gateway_port}/healthz", [nginx])
        yield Gateway(f"http://127.0.0.1:{gateway_port}", ports, directory / "nginx")
    finally:
        for proc in [nginx, *procs]:
            proc.send_signal(signal.SIGTERM)
        for proc in [nginx, *procs]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        assert nginx.returncode == 0, (directory / "nginx" / "logs" / "error.log").read_text()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def _example_path(template: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)


def test_every_resource_reaches_its_owner_through_nginx(gateway: Gateway) -> None:
    routes = route_map()
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for service in SERVICES:
            owner_addresses = {f"127.0.0.1:{gateway.ports[service]}", f"127.0.0.1:{gateway.ports[service] + 100}"}
            for prefix in routes[service]:
                template = next(p for p in service_paths(service) if p == prefix or p.startswith(prefix + "/"))
                request_id = f"route-{uuid.uuid4().hex}"
                response = client.get(_example_path(template), headers={"X-Request-ID": request_id})
                assert response.status_code != 503, (prefix, response.text)
                assert response.headers["x-request-id"] == request_id  # echoed by the service
                assert gateway.upstream_of(request_id) in owner_addresses, (prefix, service)


def test_request_ids_pass_through_or_are_set(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        token = auth("rep-1", "sales_rep")
        response = client.get("/v1/contracts", headers={**token, "X-Request-ID": "caller-id-1"})
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["items"], list)
        assert response.headers["x-request-id"] == "caller-id-1"
        generated = client.get("/v1/contracts", headers=token).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)  # nginx's $request_id, seen by the service
        assert gateway.upstream_of(generated) == f"127.0.0.1:{gateway.ports['contracts']}"
        replaced = client.get("/v1/contracts", headers={**token, "X-Request-ID": "bad id <script>"})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])


def test_bodies_over_the_limit_are_refused_by_the_gateway(gateway: Gateway) -> None:
    request_id = f"big-{uuid.uuid4().hex}"
    response = httpx.post(
        f"{gateway.url}/v1/contracts",
        content=b"x" * (2 * 1024 * 1024),
        headers={**auth("rep-1", "sales_rep"), "Content-Type": "application/json", "X-Request-ID": request_id},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert gateway.upstream_of(request_id) == "-"  # never reached a service


def test_unknown_paths_are_a_404_problem(gateway: Gateway) -> None:
    for path in ("/v1/no-such-resource", "/v1/ordersx", "/admin", "/services/orders/metrics"):
        response = httpx.get(gateway.url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


def test_requests_are_spread_over_every_replica(gateway: Gateway) -> None:
    token = auth("mgr-1", "sales_manager")
    seen = set()
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(20):
            request_id = uuid.uuid4().hex
            assert client.get("/v1/orders", headers={**token, "X-Request-ID": request_id}).status_code == 200
            seen.add(gateway.upstream_of(request_id))
    assert seen == {f"127.0.0.1:{gateway.ports['orders']}", f"127.0.0.1:{gateway.ports['orders'] + 100}"}


def test_the_ops_page_links_every_reference_and_health(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        links = re.findall(r'(?:href|data-url)="(/[^"]+)"', page.text)
        for service in SERVICES:
            for kind in ("docs", "redoc", "openapi.json"):
                assert f"/services/{service}/{kind}" in links
            assert f"/services/{service}/replicas/0/readyz" in links
        statuses = {link: client.get(link).status_code for link in links}
        down = {link for link, status in statuses.items() if status != 200}
        # Replica 1 runs for orders only; the page shows the others' as down.
        assert down == {f"/services/{s}/replicas/1/readyz" for s in SERVICES if s != "orders"}, statuses
        problem = client.get("/services/leads/replicas/1/readyz")
        assert problem.status_code == 503
        assert problem.headers["content-type"] == "application/problem+json"

        for service in SERVICES:
            direct = httpx.get(f"http://127.0.0.1:{gateway.ports[service]}/openapi.json", timeout=10).json()
            assert client.get(f"/services/{service}/openapi.json").json() == direct


def test_api_references_work_under_the_gateway_prefix(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for service in SERVICES:
            for page in ("docs", "redoc"):
                html = client.get(f"/services/{service}/{page}").text
                assets = re.findall(r"""(?:src|href|spec-url|url:)\s*=?\s*['"](/[^'"]+)['"]""", html)
                assert f"/services/{service}/openapi.json" in assets, (service, page, assets)
                for asset in assets:
                    assert asset.startswith(f"/services/{service}/"), asset
                    assert client.get(asset).status_code == 200, asset


async def test_a_forwarded_prefix_that_is_not_a_plain_path_is_ignored() -> None:
    from services.contracts.main import create_app

    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://contracts.test") as client:
        good = await client.get("/docs", headers={"X-Forwarded-Prefix": "/services/contracts"})
        assert "'/services/contracts/openapi.json'" in good.text
        bad = await client.get("/docs", headers={"X-Forwarded-Prefix": "/x'</script><script>alert(1)//"})
        assert "alert(1)" not in bad.text
        assert "'/openapi.json'" in bad.text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
async def test_the_ops_page_and_references_render_in_a_browser_offline(gateway: Gateway) -> None:
    """Chromium with every host but 127.0.0.1 unresolvable: nothing comes from a CDN."""
    async with launch(phone=False) as browser:
        await browser.navigate(f"{gateway.url}/")
        states: dict[str, str] = {}
        for _ in range(100):  # the page checks readiness with fetch() after loading
            states = await browser.evaluate(
                "Object.fromEntries([...document.querySelectorAll('.health')].map(e => [e.dataset.url, e.textContent]))"
            )
            if not any("…" in text for text in states.values()):
                break
            await asyncio.sleep(0.1)
        for service in SERVICES:
            assert states[f"/services/{service}/replicas/0/readyz"] == "replica 0: ready"
            expected = "ready" if service == "orders" else "unreachable"
            assert states[f"/services/{service}/replicas/1/readyz"].endswith(expected), states

        await browser.navigate(f"{gateway.url}/services/contracts/docs")
        rendered = 0
        for _ in range(100):  # Swagger UI fetches openapi.json through the gateway, then renders
            rendered = await browser.evaluate("document.querySelectorAll('.opblock').length")
            if rendered:
                break
            await asyncio.sleep(0.1)
        assert rendered > 5


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands nginx to www-data")
def test_as_root_a_folder_www_data_cannot_reach_moves_to_var_tmp(tmp_path: Path) -> None:
    private = tmp_path / "private"  # like a clone under /root (mode 700)
    private.mkdir(mode=0o700)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "deploy.gateway", "run", "--check", "--dir", str(private / "run" / "gateway")]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    moved = re.search(r"using (/var/tmp/salesline-gateway-[0-9a-f]{12})", result.stdout)
    try:
        assert result.returncode == 0 and moved, result.stdout + result.stderr
        assert "test is successful" in result.stderr  # nginx -t, run as www-data
        assert Path(moved[1], "nginx.conf").stat().st_uid == pwd.getpwnam("www-data").pw_uid
    finally:
        if moved:
            shutil.rmtree(moved[1], ignore_errors=True)
