"""deploy/compose.yaml and deploy/Dockerfile, checked without a container engine (none runs on
these machines): the file parses, every long-running service has a health check, every image is
pinned, the commands are the ones `make run` uses, every process gets the settings it needs to
start in production, and no secret value is committed."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.gateway import dns_name, route_map
from shared.migrate import SERVICES
from tests.conftest import ROOT
from tests.deploy.helpers import NGINX, SECRET_NAME, interpolate, placeholder, required_variables, settings_under

DEPLOY = ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES_IN_COMPOSE = COMPOSE["services"]
ONE_SHOT = {name for name, spec in SERVICES_IN_COMPOSE.items() if spec.get("restart") == "no"}
PINNED = re.compile(r"^[a-z0-9./_-]+(:[A-Za-z0-9._-]*\d[A-Za-z0-9._-]*)?(@sha256:[0-9a-f]{64})?$")


def provided() -> dict[str, str]:
    """What an operator puts in deploy/compose/.env: every required variable."""
    return {name: placeholder(name) for name in required_variables(COMPOSE_TEXT)}


def test_every_process_of_every_service_is_there() -> None:
    for service in SERVICES:
        name = dns_name(service)
        assert {f"{name}-api", f"{name}-worker", f"migrate-{name}"} <= set(SERVICES_IN_COMPOSE), service
    assert {"postgres", "rabbitmq", "gateway"} <= set(SERVICES_IN_COMPOSE)
    assert ONE_SHOT == {f"migrate-{dns_name(s)}" for s in SERVICES} | {"gateway-config"}


def test_every_long_running_service_has_a_health_check() -> None:
    for name, spec in SERVICES_IN_COMPOSE.items():
        if name in ONE_SHOT:
            continue
        test = spec.get("healthcheck", {}).get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert spec.get("restart") == "unless-stopped", name


def test_dependencies_wait_for_health_and_for_the_migrations() -> None:
    conditions = {
        name: {dep: cond["condition"] for dep, cond in spec.get("depends_on", {}).items()}
        for name, spec in SERVICES_IN_COMPOSE.items()
    }
    # Migrations run one after the other, the first once PostgreSQL and RabbitMQ are healthy.
    chain = [f"migrate-{dns_name(s)}" for s in SERVICES]
    assert conditions[chain[0]] == {"postgres": "service_healthy", "rabbitmq": "service_healthy"}
    for before, after in itertools.pairwise(chain):
        assert conditions[after] == {before: "service_completed_successfully"}
    for service in SERVICES:
        for process in ("api", "worker"):
            assert conditions[f"{dns_name(service)}-{process}"] == {chain[-1]: "service_completed_successfully"}
    assert conditions["gateway"] == {f"{dns_name(s)}-api": "service_healthy" for s in SERVICES} | {
        "gateway-config": "service_completed_successfully"
    }


def test_every_image_is_pinned() -> None:
    images = [interpolate(spec["image"], {}) for spec in SERVICES_IN_COMPOSE.values()]
    for image in images:
        assert PINNED.fullmatch(image) and ":" in image and not image.endswith(":latest"), image
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            image = line.split()[1]
            assert PINNED.fullmatch(image) and re.search(r":\d+\.\d+\.\d+", image), line


def test_the_dockerfile_is_multi_stage_and_runs_as_a_user() -> None:
    lines = [line.split() for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line and line[0] != "#"]
    froms = [words for words in lines if words[0] == "FROM"]
    assert len(froms) >= 2 and froms[0][-2:] == ["AS", "build"] and "slim" in froms[-1][1]
    user = [words[1] for words in lines if words[0] == "USER"]
    assert user and user[-1] not in ("0", "root")
    assert ["ENTRYPOINT", '["/entrypoint.sh"]'] in lines


def _run_all_default(variable: str) -> str:
    """A module template scripts/run_all.py uses (e.g. ``services.{name}.worker``)."""
    source = (ROOT / "scripts" / "run_all.py").read_text()
    return re.search(rf'"{variable}", "([^"]+)"', source)[1]


def test_the_commands_are_the_ones_make_run_uses() -> None:
    entrypoint = (DEPLOY / "entrypoint.sh").read_text()
    app = _run_all_default("SALESLINE_RUN_APP").replace("{name}", "${2:?service}")
    worker = _run_all_default("SALESLINE_RUN_WORKER").replace("{name}", "${2:?service}")
    migrate = _run_all_default("SALESLINE_RUN_MIGRATE")
    assert re.search(rf'api\)(.|\n)*?exec python -m shared.serve --factory "{re.escape(app)}"', entrypoint)
    assert re.search(rf'worker\)\s+exec python -m "{re.escape(worker)}"', entrypoint)
    assert re.search(rf"migrate\)(.|\n)*?exec python -m {re.escape(migrate)} \"\$@\"", entrypoint)
    for service in SERVICES:
        name = dns_name(service)
        assert SERVICES_IN_COMPOSE[f"{name}-api"]["command"] == ["api", service]
        assert SERVICES_IN_COMPOSE[f"{name}-worker"]["command"] == ["worker", service]
        assert SERVICES_IN_COMPOSE[f"migrate-{name}"]["command"] == ["migrate", "upgrade", service]
    # The migrate CLI accepts what the jobs pass.
    from shared.migrate import main

    with pytest.raises(SystemExit) as exc:
        main(["upgrade", "--help"])
    assert exc.value.code == 0


def _environment(name: str, values: dict[str, str]) -> dict[str, str]:
    return {key: interpolate(str(value), values) for key, value in SERVICES_IN_COMPOSE[name]["environment"].items()}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("process", ["api", "worker", "migrate"])
def test_each_process_gets_what_it_needs_to_start_in_production(
    service: str, process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"migrate-{dns_name(service)}" if process == "migrate" else f"{dns_name(service)}-{process}"
    values = provided()
    env = _environment(name, values)
    settings = settings_under(service, env, monkeypatch)  # raises on a missing/development secret
    assert settings.environment == "production"
    assert settings.db_host == "postgres" and settings.db_port == 5432
    assert urlsplit(settings.amqp_url).hostname == "rabbitmq"
    assert settings.db_role_password == values[f"SALESLINE_{service.upper()}_DB_PASSWORD"]
    assert settings.worker_metrics_port == 9000 and settings.worker_metrics_host == "0.0.0.0"
    if process == "migrate":
        assert settings.db_admin_password == values["POSTGRES_PASSWORD"]
    else:
        assert "SALESLINE_DB_ADMIN_PASSWORD" not in env  # only the migration jobs hold the admin
    # Another service's secrets stay out of this container.
    for other in set(SERVICES) - {service}:
        assert values[f"SALESLINE_{other.upper()}_DB_PASSWORD"] not in env.values()


def test_a_missing_secret_stops_compose() -> None:
    values = provided()
    del values["SALESLINE_JWT_SECRET"]
    with pytest.raises(KeyError, match="SALESLINE_JWT_SECRET"):
        _environment("orders-api", values)


def test_no_secret_value_is_committed() -> None:
    for name, spec in SERVICES_IN_COMPOSE.items():
        for key, value in (spec.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), (name, key, value)
            assert (
                "://" not in str(value)
                or re.search(r"://[^/@]*\$\{[A-Z_]+:\?[^}]*\}@", str(value))
                or ("@" not in str(value))
            ), (name, key)
    example = (DEPLOY / "compose" / "env.example").read_text()
    listed = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert required_variables(COMPOSE_TEXT) <= set(listed)
    assert all(value == "" for key, value in listed.items() if SECRET_NAME.search(key))
    tracked = subprocess.run(["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [path for path in tracked if Path(path).name == ".env"]


def test_the_gateway_config_is_rendered_from_the_routers_when_compose_starts(tmp_path: Path) -> None:
    job, gateway = SERVICES_IN_COMPOSE["gateway-config"], SERVICES_IN_COMPOSE["gateway"]
    (volume,) = job["volumes"]
    name, directory = volume.split(":")
    assert job["command"] == ["gateway-config", directory]
    assert f"{name}:{directory}:ro" in gateway["volumes"]
    assert gateway["command"][:3] == ["nginx", "-c", f"{directory}/nginx.conf"]
    entrypoint = (DEPLOY / "entrypoint.sh").read_text()
    assert re.search(r'gateway-config\)\s+(#.*\s+)*exec python -m deploy.gateway render --dir "\$\{2', entrypoint)
    assert "COPY deploy/gateway ./deploy/gateway" in (DEPLOY / "Dockerfile").read_text()

    # What the job runs, with the job's environment.
    out = tmp_path / "gateway"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESLINE_")} | job["environment"]
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run([sys.executable, "-m", "deploy.gateway", "render", "--dir", str(out)], cwd=ROOT, env=env, check=True)
    conf = (out / "nginx.conf").read_text()
    assert set(re.findall(r"server ([a-z0-9-]+):8000 ", conf)) == {f"{dns_name(s)}-api" for s in SERVICES}
    for service, prefixes in route_map().items():
        for prefix in prefixes:
            assert f"location ^~ {prefix}/ {{\n            proxy_pass http://{service};" in conf
    assert f"root {out}/html;" in conf and (out / "html" / "index.html").is_file()
    if NGINX:
        # Compose's DNS names do not resolve here: test the syntax with them on loopback.
        local = tmp_path / "nginx.conf"
        local.write_text(re.sub(r"\b[a-z0-9-]+-api:8000\b", "127.0.0.1:8000", conf).replace("/tmp", str(tmp_path)))
        result = subprocess.run(
            [NGINX, "-t", "-p", str(tmp_path), "-c", str(local), "-e", str(tmp_path / "error.log")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
