"""The gateway: one nginx in front of every service (DESIGN.md §4: resources never collide, so
routing is by path prefix).

The route map is derived from the services' own routers at render time, so a new router is
routed without anyone editing a config: ``route_map()`` reads every app's OpenAPI paths and
gives each service the ``/v1/<resource>`` prefixes it serves. The same map renders

- the local nginx (``python -m deploy.gateway run``, started by ``make run``),
- the compose gateway's nginx.conf, rendered when compose starts (the image's
  ``gateway-config`` command: ``python -m deploy.gateway render``),
- the Kubernetes manifests and Ingress (``python -m deploy.gateway generate``; committed, and a
  test fails when they are out of date).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from shared.migrate import SERVICES

HERE = Path(__file__).resolve().parent
# Default API ports on 127.0.0.1 (DESIGN.md §6); `make run` puts replica i on port + 100 * i.
DEFAULT_PORTS = {"leads": 8001, "contracts": 8002, "orders": 8003, "service_desk": 8004, "webhooks": 8005}
DEFAULT_GATEWAY_PORT = 8000
# The services' own limit (shared.http.DEFAULT_MAX_BODY_SIZE) is 1 MiB: refuse bigger bodies early.
MAX_BODY_SIZE = "1m"
# What of a service the gateway exposes under /services/<name>/ (the ops page); not /metrics.
OPS_PATHS = ("docs", "redoc", "openapi.json", "healthz", "readyz")
_RESOURCE = re.compile(r"^/v1/([a-z0-9-]+)(?:/|$)")


class RouteConflictError(RuntimeError):
    """Two services claim the same /v1/<resource> prefix, or a path is outside /v1/<resource>."""


def service_paths(service: str) -> list[str]:
    """Every path template of a service's app (its OpenAPI paths; the app is built, not started)."""
    app = importlib.import_module(f"services.{service}.main").create_app()
    return list(app.openapi()["paths"])


def route_map(services: Sequence[str] = SERVICES) -> dict[str, list[str]]:
    """``{service: ["/v1/<resource>", ...]}`` from the apps' routes; each prefix has one owner."""
    owners: dict[str, str] = {}
    for service in services:
        for path in service_paths(service):
            if not path.startswith("/v1/"):
                continue  # ops routes (/healthz, /docs, ...) exist in every service
            match = _RESOURCE.match(path)
            if match is None:
                raise RouteConflictError(f"{service}: {path} is not under /v1/<resource>")
            prefix = f"/v1/{match[1]}"
            if owners.setdefault(prefix, service) != service:
                raise RouteConflictError(f"{prefix} is served by both {owners[prefix]} and {service}")
    routes: dict[str, list[str]] = {service: [] for service in services}
    for prefix, service in sorted(owners.items()):
        routes[service].append(prefix)
    return routes


def owner_of(path: str, routes: Mapping[str, Sequence[str]]) -> str | None:
    """The service the gateway sends ``path`` to (the same rule as the nginx locations)."""
    for service, prefixes in routes.items():
        if any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes):
            return service
    return None


@dataclass
class GatewayConfig:
    """What differs between the local nginx, the compose container and the tests."""

    listen: str
    upstreams: dict[str, list[str]]  # service -> ["host:port", ...], one per replica
    routes: dict[str, list[str]]
    pid_path: str
    temp_dir: str
    error_log: str
    access_log: str
    html_dir: str
    worker_processes: str = "1"
    max_body_size: str = MAX_BODY_SIZE
    ops_paths: Sequence[str] = field(default=OPS_PATHS)


def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(HERE),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render_nginx(config: GatewayConfig) -> str:
    return _templates().get_template("nginx.conf.j2").render(c=config)


def render_ops_page(config: GatewayConfig) -> str:
    env = _templates()
    env.autoescape = True
    return env.get_template("ops.html.j2").render(c=config)


def local_upstreams(replicas: int, env: Mapping[str, str] = os.environ) -> dict[str, list[str]]:
    """The APIs `make run` starts: SALESLINE_<NAME>_PORT (or the default), + 100 per replica."""
    upstreams = {}
    for service in SERVICES:
        port = int(env.get(f"SALESLINE_{service.upper()}_PORT") or DEFAULT_PORTS[service])
        upstreams[service] = [f"127.0.0.1:{port + 100 * i}" for i in range(replicas)]
    return upstreams


def local_config(directory: Path, *, port: int, upstreams: dict[str, list[str]], routes: dict[str, list[str]]):
    """An nginx that keeps everything (pid, temp files, logs, the ops page) under ``directory``."""
    return GatewayConfig(
        listen=f"127.0.0.1:{port}",
        upstreams=upstreams,
        routes=routes,
        pid_path=str(directory / "nginx.pid"),
        temp_dir=str(directory / "temp"),
        error_log=str(directory / "logs" / "error.log"),
        access_log=str(directory / "logs" / "access.log"),
        html_dir=str(directory / "html"),
    )


def write_config(directory: Path, config: GatewayConfig) -> Path:
    """Write nginx.conf and the ops page into ``directory``; returns the nginx.conf path."""
    for sub in ("temp", "logs", "html"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "html" / "index.html").write_text(render_ops_page(config))
    conf = directory / "nginx.conf"
    conf.write_text(render_nginx(config))
    return conf


# -- files committed for the container platforms ---------------------------------------------

DEPLOY_DIR = HERE.parent
CONTAINER_PORT = 8000  # every API container listens here (deploy/entrypoint.sh)
CONTAINER_GATEWAY_PORT = 8080  # unprivileged nginx
K8S_DIR = DEPLOY_DIR / "k8s"
# A service's own secrets besides its database password: (variable, key in Secret salesline-<service>).
K8S_SERVICE_SECRETS = {
    "orders": [("SALESLINE_ORDERS_ERP_WEBHOOK_SECRET", "erp-webhook-secret")],
    "webhooks": [("SALESLINE_WEBHOOKS_SECRET_KEYS", "secret-keys")],
}


def dns_name(service: str) -> str:
    """A service's name in DNS (compose service, Kubernetes Service): no underscores."""
    return service.replace("_", "-")


def container_config(
    routes: dict[str, list[str]], directory: str, upstream_port: int = CONTAINER_PORT
) -> GatewayConfig:
    """The containers' gateway: the official nginx image as a non-root user, logs to the
    container's; ``directory`` is where the config and the ops page are mounted in the nginx
    container; the APIs are ``<service>-api:<upstream_port>`` (8000 in compose, the Kubernetes
    Services' 80)."""
    return GatewayConfig(
        listen=str(CONTAINER_GATEWAY_PORT),
        upstreams={s: [f"{dns_name(s)}-api:{upstream_port}"] for s in routes},
        routes=routes,
        pid_path="/tmp/nginx.pid",
        temp_dir="/tmp",
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        html_dir=f"{directory}/html",
        worker_processes="auto",
    )


def generated_files(routes: dict[str, list[str]] | None = None) -> dict[Path, str]:
    """The committed Kubernetes files rendered from the route map (``python -m deploy.gateway generate``)."""
    routes = routes or route_map()
    k8s = Environment(
        loader=FileSystemLoader(K8S_DIR / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    files = {
        K8S_DIR / "base" / "ingress.yaml": k8s.get_template("ingress.yaml.j2").render(
            routes=routes, max_body_size=MAX_BODY_SIZE
        ),
    }
    for service in routes:
        text = k8s.get_template("service.yaml.j2").render(
            s=service, dns=dns_name(service), secrets=K8S_SERVICE_SECRETS.get(service, [])
        )
        files[K8S_DIR / "base" / f"{dns_name(service)}.yaml"] = text
    return files
