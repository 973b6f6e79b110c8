"""deploy/k8s, checked offline: every manifest against the Kubernetes JSON schemas
(kubernetes-validate, no network), the operators' resources structurally, and the
cross-references (Services select Deployments, probes hit paths the apps serve, every
container gets what its settings need in production, Ingress paths go to Services)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import kubernetes_validate
import pytest
import yaml

from deploy.gateway import K8S_DIR, dns_name, generated_files, route_map, service_paths
from shared.migrate import SERVICES
from tests.conftest import ROOT
from tests.deploy.helpers import placeholder, settings_under

KUBECTL = shutil.which("kubectl")
K8S_VERSION = "1.30.0"  # the oldest Kubernetes these manifests target
CRDS = {("postgresql.cnpg.io/v1", "Cluster"), ("rabbitmq.com/v1beta1", "RabbitmqCluster")}
OVERLAYS = sorted(p.name for p in (K8S_DIR / "overlays").iterdir() if (p / "kustomization.yaml").exists())
# Made by the RabbitMQ Cluster Operator in the cluster, not by us.
OPERATOR_SECRETS = {"salesline-rabbitmq-default-user": {"username": "default_user_x", "password": "p4ssw0rdx"}}


def base_resources() -> list[dict]:
    kustomization = yaml.safe_load((K8S_DIR / "base" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S_DIR / "base" / name).read_text()) if d]
    return docs


def test_the_generated_manifests_are_up_to_date() -> None:
    for path, text in generated_files().items():
        if path.is_relative_to(K8S_DIR):
            assert path.read_text() == text, f"{path} is stale: run `make manifests`"
    listed = yaml.safe_load((K8S_DIR / "base" / "kustomization.yaml").read_text())["resources"]
    assert {f"{dns_name(s)}.yaml" for s in SERVICES} | {"ingress.yaml"} <= set(listed)


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    checked = 0
    for doc in base_resources():
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 8 * len(SERVICES)


def test_a_broken_manifest_is_caught() -> None:
    deployment = next(d for d in base_resources() if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"no": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_operators_clusters() -> None:
    by_kind = {d["kind"]: d for d in base_resources() if (d["apiVersion"], d["kind"]) in CRDS}
    rabbit, postgres = by_kind["RabbitmqCluster"], by_kind["Cluster"]
    assert rabbit["spec"]["replicas"] == 3
    assert "default_queue_type = quorum" in rabbit["spec"]["rabbitmq"]["additionalConfig"]
    assert re.fullmatch(r"rabbitmq:\d+\.\d+\.\d+-management", rabbit["spec"]["image"])
    assert postgres["spec"]["instances"] == 3
    assert re.fullmatch(r"ghcr\.io/cloudnative-pg/postgresql:\d+\.\d+", postgres["spec"]["imageName"])
    roles = {r["name"]: r for r in postgres["spec"]["managed"]["roles"]}
    assert set(roles) == {f"salesline_{s}" for s in SERVICES}
    for service in SERVICES:
        role = roles[f"salesline_{service}"]
        assert role["login"] and role["ensure"] == "present"
        assert role["passwordSecret"]["name"] == f"salesline-db-{dns_name(service)}"


def test_worker_probes_are_answered_by_the_metrics_endpoint() -> None:
    """prometheus_client's server (what a worker serves) answers the probe paths with 200."""
    from prometheus_client import start_http_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
    finally:
        server.shutdown()
        thread.join(5)


# -- the overlays, built by kustomize (kubectl's) with placeholder secrets --------------------


def built(overlay: str, tmp_path: Path) -> list[dict]:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    secrets = copy / "overlays" / overlay / "secrets"
    secrets.mkdir()
    for example in (K8S_DIR / "overlays" / "secrets.example").glob("*.env"):
        lines = []
        for line in example.read_text().splitlines():
            if line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            lines.append(f"{key}={value or placeholder(f'{example.stem}_{key}'.upper().replace('-', '_'))}")
        (secrets / example.name).write_text("\n".join(lines) + "\n")
    out = subprocess.run([KUBECTL, "kustomize", str(copy / "overlays" / overlay)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def container_env(container: dict, resources: list[dict]) -> dict[str, str]:
    """A container's environment as the kubelet builds it (ConfigMaps, Secrets, $(VAR))."""
    config_maps = {d["metadata"]["name"]: d["data"] for d in resources if d["kind"] == "ConfigMap"}
    secrets = {
        d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
        for d in resources
        if d["kind"] == "Secret"
    } | OPERATOR_SECRETS
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\(([A-Za-z_0-9]+)\)", lambda m: env[m[1]], var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] in secrets, f"Secret {ref['name']} does not exist"
            assert ref["key"] in secrets[ref["name"]], f"Secret {ref['name']} has no key {ref['key']}"
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
    return env


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, tmp_path: Path) -> list[dict]:
    if KUBECTL is None:
        pytest.skip("kubectl (with kustomize) not installed")
    return built(request.param, tmp_path)


def _workloads(resources: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in resources if d["kind"] == kind}


def test_every_service_has_its_workloads(overlay: list[dict]) -> None:
    deployments, jobs = _workloads(overlay, "Deployment"), _workloads(overlay, "Job")
    for service in SERVICES:
        name = dns_name(service)
        assert deployments[f"{name}-api"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["api", service]
        assert deployments[f"{name}-worker"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker", service]
        migrate = jobs[f"migrate-{name}"]["spec"]["template"]["spec"]["containers"][0]
        assert migrate["args"] == ["migrate", "upgrade", service]
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert set(_workloads(overlay, kind)) == set(deployments), kind
    for doc in overlay:
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for container in pod["containers"] + pod.get("initContainers", []):
                image = container["image"]
                assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+(-[a-z]+)?", image), image  # pinned


def _containers(doc: dict) -> list[dict]:
    """The Salesline processes (api, worker, migrate) of a Deployment or Job."""
    if doc["kind"] in ("Deployment", "Job"):
        containers = doc["spec"]["template"]["spec"]["containers"]
        return [c for c in containers if c.get("args", [""])[0] in ("api", "worker", "migrate")]
    return []


def test_services_pdbs_and_hpas_point_at_deployments(overlay: list[dict]) -> None:
    deployments = _workloads(overlay, "Deployment")
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for name, service in _workloads(overlay, "Service").items():
        selector = service["spec"]["selector"]
        matched = [d for d, labels in pod_labels.items() if selector.items() <= labels.items()]
        assert matched == [name], (name, matched)
        container_ports = {p["name"] for p in deployments[name]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    for name, pdb in _workloads(overlay, "PodDisruptionBudget").items():
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels[name].items()
        assert pdb["spec"]["minAvailable"] < deployments[name]["spec"]["replicas"]
    for name, hpa in _workloads(overlay, "HorizontalPodAutoscaler").items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        kinds = {m["type"] for m in hpa["spec"]["metrics"]}
        assert kinds == ({"External", "Resource"} if name.endswith("-worker") else {"Resource"}), name
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "External":  # the adapter's rule keys it by the pods' service label
                selector = metric["external"]["metric"]["selector"]["matchLabels"]
                assert selector == {"salesline_service": pod_labels[name]["salesline.io/service"]}
    for name, deployment in deployments.items():
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels[name].items()


def test_probes_hit_paths_the_apps_serve(overlay: list[dict]) -> None:
    config = next(d["data"] for d in overlay if d["kind"] == "ConfigMap")
    for name, deployment in _workloads(overlay, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if name == "salesline-gateway":
            continue  # test_the_gateway_pods_render_the_ops_page
        service = container["args"][1]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
        assert probes["readinessProbe"]["path"] == "/readyz" and probes["livenessProbe"]["path"] == "/healthz"
        if name.endswith("-api"):
            paths = service_paths(service)
            assert {"/readyz", "/healthz"} <= set(paths)
            assert all(ports[p["port"]] == 8000 for p in probes.values())
        else:  # the worker's metrics server (test_worker_probes_are_answered_by_the_metrics_endpoint)
            assert all(ports[p["port"]] == int(config["SALESLINE_WORKER_METRICS_PORT"]) for p in probes.values())
            assert config["SALESLINE_WORKER_METRICS_HOST"] == "0.0.0.0"


def test_every_container_gets_what_its_settings_need(overlay: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    roles = {
        r["name"]: r["passwordSecret"]["name"]
        for d in overlay
        if d["kind"] == "Cluster"
        for r in d["spec"]["managed"]["roles"]
    }
    for doc in overlay:
        for container in _containers(doc):
            service = container["args"][-1]
            env = container_env(container, overlay)
            settings = settings_under(service, env, monkeypatch)  # raises on a missing/development secret
            assert settings.environment in ("production", "staging")
            assert settings.db_host == "salesline-db-rw"
            assert urlsplit(settings.amqp_url).hostname == "salesline-rabbitmq"
            assert (
                urlsplit(settings.amqp_url).password == OPERATOR_SECRETS["salesline-rabbitmq-default-user"]["password"]
            )
            assert roles[settings.db_role] == f"salesline-db-{dns_name(service)}"  # the role CNPG manages
            is_migration = doc["kind"] == "Job"
            assert ("SALESLINE_DB_ADMIN_PASSWORD" in env) == is_migration


def test_the_ingress_routes_every_resource_to_its_service(overlay: list[dict]) -> None:
    services = _workloads(overlay, "Service")
    (ingress,) = _workloads(overlay, "Ingress").values()
    routed = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] in services, backend
            assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
            assert path["pathType"] == ("Exact" if path["path"] == "/" else "Prefix")
            routed[path["path"]] = backend["name"]
    expected = {prefix: f"{dns_name(s)}-api" for s, prefixes in route_map().items() for prefix in prefixes}
    expected |= {"/": "salesline-gateway", "/services": "salesline-gateway"}  # the ops page
    assert routed == expected


def test_the_gateway_pods_render_the_ops_page(overlay: list[dict], tmp_path: Path) -> None:
    """The init container's command renders a config whose upstreams are the API Services."""
    pod = _workloads(overlay, "Deployment")["salesline-gateway"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (nginx,) = pod["containers"]
    process, directory, port = init["args"]
    assert process == "gateway-config"
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert {m["name"]: m["mountPath"] for m in nginx["volumeMounts"]}["config"] == mounts["config"] == directory
    assert nginx["args"][:3] == ["nginx", "-c", f"{directory}/nginx.conf"]
    # What the entrypoint runs for it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESLINE_")}
    env |= {e["name"]: e["value"] for e in init["env"]} | {"PYTHONPATH": str(ROOT)}
    render = [sys.executable, "-m", "deploy.gateway", "render", "--dir", str(tmp_path), "--upstream-port", port]
    subprocess.run(render, cwd=ROOT, env=env, check=True, capture_output=True)
    conf = (tmp_path / "nginx.conf").read_text()
    services = {name for name in _workloads(overlay, "Service") if name != "salesline-gateway"}
    assert set(re.findall(r"server ([a-z0-9-]+):(\d+) ", conf)) == {(name, "80") for name in services}
    ports = {p["name"]: p["containerPort"] for p in nginx["ports"]}
    assert f"listen {ports['http']};" in conf
    for probe in ("readinessProbe", "livenessProbe"):
        assert f"location = {nginx[probe]['httpGet']['path']} {{" in conf


def test_no_secret_value_is_committed() -> None:
    tracked = subprocess.run(["git", "ls-files", str(K8S_DIR)], cwd=K8S_DIR, capture_output=True, text=True)
    files = [Path(K8S_DIR.parent.parent / f) for f in tracked.stdout.split()]
    assert not [f for f in files if "/secrets/" in str(f)]
    for doc in base_resources():
        assert doc["kind"] != "Secret", doc["metadata"]["name"]
    for example in (K8S_DIR / "overlays" / "secrets.example").glob("*.env"):
        for line in example.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                assert key == "username" or value == "", (example.name, key)
