"""deploy/grafana/salesline.json and deploy/prometheus/alerts.yaml use only metrics the code
exports (every module of shared/ and services/ imported, names read from prometheus_client's
registry), every exported metric is on the dashboard or in an alert, and the alerts fire
(promtool's rule unit tests, when Debian's prometheus package is installed)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import REGISTRY

import services
import shared
from tests.conftest import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "salesline.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
PROMTOOL = shutil.which("promtool")

# PromQL words that look like metric names.
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "deriv", "histogram_quantile",
    "topk", "bottomk", "abs", "clamp_min", "time", "vector", "le", "inf", "nan",
}  # fmt: skip


def exported_metrics() -> dict[str, set[str]]:
    """Every metric family the code defines -> the sample names Prometheus scrapes for it."""
    for package in (shared, services):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"]}
    families = {}
    for family in REGISTRY.collect():
        if family.name.startswith(("salesline_", "http_")):
            families[family.name] = {family.name + s for s in suffixes.get(family.type, [""])}
    return families


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression selects (labels, strings, durations and functions removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return {n for n in names if n.lower() not in _PROMQL_WORDS and not n.startswith("$")}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    variables = [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    # Grafana's label_values(metric, label): only the first argument is a metric.
    exprs += [re.sub(r"label_values\(([^,]+),[^)]*\)", r"\1", query) for query in variables]
    return exprs


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_every_metric_used_is_exported_by_the_code() -> None:
    samples = set().union(*exported_metrics().values())
    used = {}
    for expr in dashboard_exprs():
        used.update(dict.fromkeys(promql_metrics(expr), "dashboard"))
    for rule in alert_rules():
        used.update(dict.fromkeys(promql_metrics(rule["expr"]), rule["alert"]))
    assert len(used) > 15
    unknown = {name: where for name, where in used.items() if name not in samples}
    assert not unknown, f"not exported by the code: {unknown}"


def test_every_exported_metric_is_on_the_dashboard_or_in_an_alert() -> None:
    used = set().union(*(promql_metrics(e) for e in dashboard_exprs() + [r["expr"] for r in alert_rules()]))
    missing = [family for family, samples in exported_metrics().items() if not samples & used]
    assert not missing, f"exported but neither on the dashboard nor in an alert: {missing}"


def test_the_extractor_sees_through_promql() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, route) (rate(a_b_bucket{x="y", le=~"1"}[5m]))) / ignoring(z) c_total'
    assert promql_metrics(expr) == {"a_b_bucket", "c_total"}


def test_the_alerts_the_issue_asks_for() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for name in ("SalesLineOutboxBacklogGrowing", "SalesLineDeadLetters", "SalesLineWebhookEndpointDisabled"):
        assert name in rules
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("critical", "warning") and rule["annotations"]["summary"]


def test_the_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "salesline" and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_the_rules_and_they_fire() -> None:
    check = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [PROMTOOL, "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True, cwd=ALERTS.parent
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_event_types_in_queries_are_in_the_catalog() -> None:
    from shared.events.base import EVENT_TYPES

    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    matchers = [m for expr in exprs for m in re.findall(r'\btype(=~?)"([^"]+)"', expr)]
    assert len(matchers) >= 3
    for operator, value in matchers:
        if operator == "=":
            assert value in EVENT_TYPES, value
        else:
            assert any(re.fullmatch(value, known) for known in EVENT_TYPES), value
