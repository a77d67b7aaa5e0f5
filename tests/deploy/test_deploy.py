"""Checks for everything under deploy/, using the real tools where there are any.

* Prometheus: `promtool check rules`, `promtool test rules`, `promtool check config`; dashboard
  queries are syntax-checked by promtool too.
* Kubernetes: every kustomization is rendered with `kubectl kustomize` (or `kustomize build`);
  core kinds are validated offline and strictly with kubernetes-validate, the KEDA and
  prometheus-operator custom resources with explicit assertions.
* Grafana: the dashboard parses, queries only known metrics and covers the required topics.

Needs on PATH: `promtool` (Debian/Ubuntu: `apt-get install prometheus`) and `kubectl` (>= 1.27,
with built-in kustomize) or `kustomize`. Python: pyyaml, kubernetes-validate. A missing tool
fails the tests that need it, with a message saying what to install: these tests are not skipped.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from tests.support.kustomize import (
    DEPLOY,
    GATEWAY_JOB,
    K8S_VERSION,
    KUSTOMIZATIONS,
    PROM_CONFIG,
    REPO,
    _all,
    _assert_ok,
    _env,
    _kubernetes_validate,
    _one,
    _quantity,
    _render,
    _render_text,
    _run,
)

PROM = DEPLOY / "prometheus"
ALERTS = PROM / "alerts.yml"
ALERTS_TEST = PROM / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "customer-activity.json"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"

JOB = "customer-activity-consumer"
APP_NAME = "customer-activity-consumer"
GATEWAY_METRIC_PREFIX = "activity_gateway_"


def _exported_series_names() -> frozenset[str]:
    """Every series name the worker exports (the names Prometheus sees), read off the code:
    PipelineMetrics and BusinessMetrics registered on a fresh registry."""
    from prometheus_client import CollectorRegistry

    from consumer.ingest.metrics import GatewayMetrics
    from consumer.telemetry.business_metrics import BusinessMetrics
    from consumer.telemetry.metrics import PipelineMetrics

    registry = CollectorRegistry()
    PipelineMetrics(registry)
    BusinessMetrics(registry)
    GatewayMetrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        elif family.type == "gauge":
            names.add(family.name)
        else:
            raise AssertionError(f"{family.name}: no rule for metric type {family.type!r}")
    return frozenset(names)


# Alerts and dashboard may use only these and Prometheus' own `up`.
KNOWN_METRICS: frozenset[str] = _exported_series_names()
PROMETHEUS_BUILTIN_METRICS = frozenset({"up"})

# Custom resources kubernetes-validate has no schema for; checked by the assertions below.
CUSTOM_KINDS = frozenset(
    {
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("keda.sh/v1alpha1", "TriggerAuthentication"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    }
)


# --------------------------------------------------------------------------------------------
# tools


def _require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH; these deploy checks need it: {install_hint}")
    return path


def _promtool() -> str:
    return _require_tool(
        "promtool",
        "apt-get install -y prometheus (or the promtool binary from a Prometheus release)",
    )


# --------------------------------------------------------------------------------------------
# PromQL metric names


_PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "bool", "offset", "inf", "nan", "atan2"}
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a regex approximation, good for our queries)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"`[^`]*`", "``", s)
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?", s):
        name, is_call = match.group(1), match.group(2)
        if is_call or name.lower() in _PROMQL_WORDS:
            continue
        names.add(name)
    return names


def is_known_metric(name: str) -> bool:
    return name in KNOWN_METRICS or name in PROMETHEUS_BUILTIN_METRICS


def test_known_metrics_are_the_series_the_code_exports() -> None:
    assert {
        "activity_consumer_events_consumed_total",
        "activity_consumer_lag_messages",
        "activity_consumer_event_age_seconds_bucket",
        "activity_consumer_handler_duration_seconds_count",
        "voucherify_redemptions_total",
        "voucherify_redemption_discount_minor_units_sum",
        "activity_gateway_requests_total",
        "activity_gateway_ack_seconds_bucket",
    } <= KNOWN_METRICS
    # a histogram has no series under its bare name, and suffixes do not stack
    assert not is_known_metric("activity_consumer_event_age_seconds")
    assert not is_known_metric("activity_consumer_commits_total_sum")
    assert all(n.startswith(("activity_consumer_", "voucherify_", GATEWAY_METRIC_PREFIX)) for n in KNOWN_METRICS)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('up{job="x"} == 0', {"up"}),
        (
            'sum by (topic) (max by (topic, partition) (a_lag{job="j"})) > 10'
            ' and deriv(sum by (topic) (a_lag{job="j"})[10m:1m]) > 0',
            {"a_lag"},
        ),
        (
            'histogram_quantile(0.95, sum by (family, le) (rate(h_bucket{i=~"$instance"}[$__rate_interval]))) * 60',
            {"h_bucket"},
        ),
        (
            "(sum(increase(c_total[15m])) or vector(0)) == 0 and on () max(up) == 1",
            {"c_total", "up"},
        ),
        ('time() - g_seconds{a="b{c}"} offset 5m > 1e3', {"g_seconds"}),
        ("x / on (job, instance) group_left (pod) y", {"x", "y"}),
    ],
)
def test_metric_name_extraction(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


# --------------------------------------------------------------------------------------------
# Prometheus rules and config


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    _assert_ok(_run([_promtool(), "check", "rules", str(ALERTS)]))


def test_promtool_test_rules() -> None:
    _assert_ok(_run([_promtool(), "test", "rules", str(ALERTS_TEST)]))


def test_promtool_check_config(tmp_path: Path) -> None:
    # From an unrelated cwd: rule_files must resolve relative to the config file.
    proc = _run([_promtool(), "check", "config", str(PROM_CONFIG)], cwd=tmp_path)
    _assert_ok(proc)
    assert "alerts.yml" in proc.stdout + proc.stderr, "prometheus.yml should load alerts.yml"


def test_alerts_reference_only_known_metrics() -> None:
    unknown = {
        rule.get("alert") or rule.get("record"): sorted(n for n in metric_names(rule["expr"]) if not is_known_metric(n))
        for rule in _alert_rules()
    }
    unknown = {k: v for k, v in unknown.items() if v}
    assert not unknown, f"alerts use metrics the worker does not export: {unknown}"


def test_alert_test_inputs_use_only_known_metrics() -> None:
    doc = yaml.safe_load(ALERTS_TEST.read_text())
    bad = set()
    for case in doc["tests"]:
        for series in case.get("input_series", []):
            name = series["series"].split("{", 1)[0].strip()
            if not is_known_metric(name):
                bad.add(name)
    assert not bad, f"alerts.test.yml feeds series the worker does not export: {sorted(bad)}"


def test_alerts_are_well_formed() -> None:
    rules = _alert_rules()
    names = [r["alert"] for r in rules if "alert" in r]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        name = rule["alert"]
        gateway = name.startswith("VoucherifyGateway")
        job = GATEWAY_JOB if gateway else JOB
        assert f'job="{job}"' in rule["expr"], f"{name}: select job={job!r} explicitly"
        assert gateway == any(n.startswith(GATEWAY_METRIC_PREFIX) for n in metric_names(rule["expr"])) or (
            gateway and metric_names(rule["expr"]) == {"up"}
        ), f"{name}: gateway alerts are named VoucherifyGateway*, and only they read gateway metrics"
        assert rule.get("for"), f"{name}: needs a `for:` so one bad scrape does not page"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key, "").strip(), f"{name}: missing annotation {key}"


def test_required_alerts_exist() -> None:
    exprs = {r["alert"]: r["expr"] for r in _alert_rules()}
    joined = "\n".join(exprs.values())

    def has(predicate: Any, what: str) -> None:
        assert any(predicate(e) for e in exprs.values()), f"no alert for {what}"

    has(lambda e: "activity_consumer_lag_messages" in e and re.search(r"\b(deriv|delta)\(", e),
        "growing consumer lag")  # fmt: skip
    has(lambda e: "activity_consumer_dead_letters_total" in e
        and "activity_consumer_events_consumed_total" in e, "dead-letter ratio")  # fmt: skip
    has(lambda e: "voucherify_notifications_total" in e and "by (channel)" in e
        and 'outcome="failed"' in e, "notification failure ratio per channel")  # fmt: skip
    has(lambda e: "voucherify_validations_total" in e and 'result="failed"' in e
        and "/" in e, "validation failure ratio")  # fmt: skip
    has(lambda e: "activity_consumer_events_consumed_total" in e and "increase(" in e
        and "== 0" in e, "no events consumed")  # fmt: skip
    has(lambda e: re.search(r'^\s*up\{job="customer-activity-consumer"\}\s*==\s*0', e),
        "worker down")  # fmt: skip
    has(lambda e: 'absent(up{job="customer-activity-consumer"})' in e, "worker absent")
    has(lambda e: "activity_consumer_commit_failures_total" in e, "commit failures")
    has(lambda e: "activity_consumer_last_commit_timestamp_seconds" in e and "time()" in e,
        "last commit too old")  # fmt: skip
    has(lambda e: "activity_gateway_signature_failures_total" in e, "gateway signature failures")
    has(lambda e: re.search(r'^\s*(sum\()?up\{job="customer-activity-gateway"\}', e), "gateway down")
    assert joined


def test_gateway_5xx_alert_reflects_voucherifys_retry_cut_off() -> None:
    """A sustained 5xx ratio pages (critical) after a `for` that rides out a rollout but leaves
    most of Voucherify's 12 attempts; the annotation says why."""
    rules = [r for r in _alert_rules() if "activity_gateway_requests_total" in r["expr"] and '"5.."' in r["expr"]]
    assert len(rules) == 1, "one 5xx-ratio alert on the gateway's requests"
    (rule,) = rules
    assert " / " in " ".join(rule["expr"].split()) or "/\n" in rule["expr"], "a ratio, not a count"
    assert rule["labels"]["severity"] == "critical"
    minutes = int(re.fullmatch(r"(\d+)m", rule["for"]).group(1))  # type: ignore[union-attr]
    assert 5 <= minutes <= 60, rule["for"]  # the first six retries (1..32 min) fall within ~1 h
    description = rule["annotations"]["description"]
    assert "12" in description and "two days" in description and "disable" in description


def test_every_alert_is_tested_firing_and_silent() -> None:
    doc = yaml.safe_load(ALERTS_TEST.read_text())
    assert doc["rule_files"] == ["alerts.yml"]
    fires: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {r["alert"] for r in _alert_rules()}
    assert alerts - fires == set(), f"alerts never shown to fire: {sorted(alerts - fires)}"
    assert alerts - silent == set(), f"alerts never shown to stay quiet: {sorted(alerts - silent)}"
    assert (fires | silent) <= alerts, "alerts.test.yml tests alerts that do not exist"


def test_prometheus_config_scrapes_the_worker_service() -> None:
    config = yaml.safe_load(PROM_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = [sc for sc in config["scrape_configs"] if sc["job_name"] == JOB]
    assert len(jobs) == 1, f"exactly one scrape job named {JOB!r}"
    service = _one(_render("overlays/production"), "Service")
    namespace = service["metadata"]["namespace"]
    names = [n for sd in jobs[0].get("dns_sd_configs", []) for n in sd["names"]]
    expected = f"{service['metadata']['name']}.{namespace}.svc"
    assert names and all(n.startswith(expected) for n in names), (names, expected)
    assert {sd["port"] for sd in jobs[0]["dns_sd_configs"]} == {service["spec"]["ports"][0]["port"]}


def test_prometheusrule_is_in_sync_with_alerts_yml() -> None:
    rule = _one(_render("overlays/production"), "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"], (
        "deploy/k8s/components/prometheus-operator/prometheusrule.yaml is stale: "
        "run `python deploy/prometheus/sync_prometheusrule.py`"
    )


# --------------------------------------------------------------------------------------------
# Kubernetes manifests

OVERLAYS = [k for k in KUSTOMIZATIONS if k.startswith("overlays/")]


def test_expected_overlays_exist() -> None:
    assert {"overlays/dev", "overlays/production"} <= set(OVERLAYS)


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = _one(docs, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return cast(dict[str, Any], containers[0])


def _config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return cast(dict[str, str], _one(docs, "ConfigMap")["data"])


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_renders(kustomization: str) -> None:
    docs = _render(kustomization)
    kinds = {d["kind"] for d in docs}
    required = {"Deployment", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget"}
    assert required <= kinds, f"missing {required - kinds}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_manifests_validate_offline(kustomization: str) -> None:
    kv = _kubernetes_validate()
    problems = []
    for doc in _render(kustomization, None):
        ident = f"{doc['kind']}/{doc['metadata']['name']}"
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue  # no schema in kubernetes-validate; see the dedicated tests
        try:
            kv.validate(doc, K8S_VERSION, strict=True)
        except kv.SchemaNotFoundError as exc:
            problems.append(f"{ident}: {exc.message}")
        except kv.ValidationError as exc:
            problems.append(f"{ident}: {exc.message} at {'/'.join(map(str, exc.path))}")
    assert not problems, "\n".join(problems)


def test_offline_validation_is_strict() -> None:
    """Guard against a vacuous pass: a typo'd field in a Deployment must be rejected."""
    kv = _kubernetes_validate()
    deployment = _one(_render("base"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"path": "/x"}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_only_known_custom_resources(kustomization: str) -> None:
    core_groups = ("v1", "apps/v1", "policy/v1", "networking.k8s.io/v1", "autoscaling/v2")
    for doc in _render(kustomization, None):
        if doc["apiVersion"] not in core_groups:
            assert (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS, doc["kind"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_namespace_set_only_by_overlays(kustomization: str) -> None:
    namespaces = {d["metadata"].get("namespace") for d in _render(kustomization, None)}
    if kustomization == "base":
        assert namespaces == {None}, "the base must stay namespace-agnostic"
    else:
        assert len(namespaces) == 1 and None not in namespaces, namespaces


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_deployment_probes_and_ports(kustomization: str) -> None:
    docs = _render(kustomization)
    container = _container(docs)
    config = _config(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(config.get("ACTIVITY_METRICS_PORT", "9400"))
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The image's ENTRYPOINT is `activity-consumer`; the pod must not override it.
    assert "command" not in container
    assert container.get("args", ["run"]) == ["run"]
    annotations = _one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_termination_grace_exceeds_app_shutdown_grace(kustomization: str) -> None:
    docs = _render(kustomization)
    app_grace = float(_config(docs).get("ACTIVITY_SHUTDOWN_GRACE_SECONDS", "10"))
    pod_grace = _one(docs, "Deployment")["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    # Margin for process exit after the drain; SIGKILL otherwise loses the final commit.
    assert pod_grace >= app_grace + 5, (pod_grace, app_grace)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pod_security(kustomization: str) -> None:
    docs = _render(kustomization)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod.get("automountServiceAccountToken") is False
    # Every KAFKA_* env var goes to librdkafka: no KAFKA_SERVICE_HOST & co. from service links.
    assert pod.get("enableServiceLinks") is False
    assert pod["serviceAccountName"] == _one(docs, "ServiceAccount")["metadata"]["name"]
    # The image's user and the pod's must agree.
    assert f"USER {pod['securityContext']['runAsUser']}" in DOCKERFILE.read_text()


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_writable_paths_are_emptydirs(kustomization: str) -> None:
    docs = _render(kustomization)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    multiproc = _env(container)["PROMETHEUS_MULTIPROC_DIR"]["value"]
    for path in (multiproc, "/tmp"):
        assert path in mounts, f"{path} is not mounted (root filesystem is read-only)"
        assert "emptyDir" in volumes[mounts[path]], f"{path} must be an emptyDir"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_config_and_resources(kustomization: str) -> None:
    docs = _render(kustomization)
    container = _container(docs)
    configmap = _one(docs, "ConfigMap")
    refs = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
    assert refs == [configmap["metadata"]["name"]]
    config = configmap["data"]
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "ACTIVITY_GROUP_ID", "ACTIVITY_DLQ_TOPIC",
                "ACTIVITY_OUTPUT_PREFIX"):  # fmt: skip
        assert config.get(key), f"ConfigMap lacks {key}"
    assert ("ACTIVITY_TOPICS" in config) != ("ACTIVITY_PATTERN" in config), (
        "set exactly one of ACTIVITY_TOPICS / ACTIVITY_PATTERN"
    )
    assert config.get("ACTIVITY_PROCESSING_GUARANTEE", "at-least-once") in {
        "at-least-once", "exactly-once"}  # fmt: skip
    assert config.get("ACTIVITY_LOG_FORMAT", "json") in {"json", "console"}
    # Output and dead-letter topics must never be consumed again by this worker.
    inputs = [t.strip() for t in config.get("ACTIVITY_TOPICS", "").split(",") if t.strip()]
    outputs = [config["ACTIVITY_DLQ_TOPIC"], config["ACTIVITY_OUTPUT_PREFIX"] + "x"]
    for out in outputs:
        assert out not in inputs
        if "ACTIVITY_PATTERN" in config:
            assert not re.match(config["ACTIVITY_PATTERN"], out), out
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), f"{kind} incomplete"
    assert _quantity(resources["limits"]["memory"]) >= _quantity(resources["requests"]["memory"])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_no_plaintext_credentials(kustomization: str) -> None:
    docs = _render(kustomization, None)
    assert not _all(docs, "Secret"), "Secrets are created out of band, never shipped in git"
    sensitive = re.compile(r"(?i)(?:^|[_.-])(?:pass(?:word|wd)?|secret|token|credentials?)$|jaas")
    for doc in docs:
        for path, key, value in _walk(doc):
            literal = isinstance(value, str | int) and not isinstance(value, bool)
            if isinstance(key, str) and sensitive.search(key) and literal:
                pytest.fail(f"{doc['kind']}: plaintext value for {path}.{key}")
    text = _render_text(kustomization)
    assert not re.search(r"(?i)sasl\.password|password\s*=", text)
    containers = [_container(_render(kustomization, part)) for part in ("worker", "gateway")]
    for name, entry in [item for c in containers for item in _env(c).items()]:
        if sensitive.search(name) or name.startswith(("KAFKA_SASL_", "VOUCHERIFY_")):
            assert "value" not in entry, f"{name} must come from a Secret, not a literal"
            assert "secretKeyRef" in entry["valueFrom"], name


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_service_and_pdb_select_the_pods(kustomization: str) -> None:
    docs = _render(kustomization)
    deployment = _one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = _one(docs, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]
    # Headless and publishing unready pods: every pod is scraped, including those /readyz fails.
    assert service["spec"].get("clusterIP") == "None"
    assert service["spec"].get("publishNotReadyAddresses") is True
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert "maxUnavailable" in pdb["spec"], "minAvailable would block draining a 1-replica dev"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_keda_scaledobject(kustomization: str) -> None:
    docs = _render(kustomization)
    scaled = _all(docs, "ScaledObject")
    deployment = _one(docs, "Deployment")
    if not scaled:
        assert kustomization == "overlays/dev", f"{kustomization} should autoscale with KEDA"
        assert not _all(docs, "TriggerAuthentication")
        return
    so = scaled[0]
    assert len(scaled) == 1
    # KEDA owns the replica count; a fixed `replicas` would fight its HPA on every apply.
    assert "replicas" not in deployment["spec"]
    assert so["metadata"].get("namespace") == deployment["metadata"].get("namespace")
    target = so["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == deployment["metadata"]["name"]
    assert so["spec"]["minReplicaCount"] == 1
    assert so["spec"]["maxReplicaCount"] >= 2
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    config = _config(docs)
    assert meta["consumerGroup"] == config["ACTIVITY_GROUP_ID"]
    assert meta["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    if "topic" in meta:
        assert meta["topic"] in config.get("ACTIVITY_TOPICS", "").split(",")
    assert int(meta["lagThreshold"]) > 0
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata is strings only"
    if config.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").startswith("SASL"):
        keda_names = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
                      "SCRAM-SHA-512": "scram_sha512", "OAUTHBEARER": "oauthbearer",
                      "GSSAPI": "gssapi"}  # fmt: skip
        assert meta.get("sasl") == keda_names[config["KAFKA_SASL_MECHANISM"]]
    if config.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").endswith("SSL"):
        assert meta.get("tls") == "enable"
    # The TriggerAuthentication reads the worker's own Secret.
    auth = _one(docs, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    env = _env(_container(docs))
    worker_secret = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"]["name"] == worker_secret["name"]
    assert refs["password"]["key"] == worker_secret["key"]
    assert {"username", "password"} <= set(refs)


def test_dev_overlay() -> None:
    docs = _render("overlays/dev")
    assert _one(docs, "Deployment")["spec"]["replicas"] == 1
    assert _config(docs)["ACTIVITY_LOG_FORMAT"] == "console"


def test_production_overlay() -> None:
    docs = _render("overlays/production")
    base = _render("base")
    config = _config(docs)
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"].startswith(("SCRAM-", "PLAIN", "OAUTHBEARER"))
    assert config["ACTIVITY_LOG_FORMAT"] == "json"
    container = _container(docs)
    env = _env(container)
    for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"].get("optional") is False, (
            f"{name}: production must not start without its credentials"
        )
    image = container["image"]
    assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1], image
    prod, dev_like = container["resources"], _container(base)["resources"]
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            assert _quantity(prod[kind][res]) > _quantity(dev_like[kind][res]), (kind, res)
    monitor = _one(docs, "ServiceMonitor")
    service = _one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == JOB


# --------------------------------------------------------------------------------------------
# Dockerfile (no Docker engine here: static checks)


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage build expected"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M) or all(
        f.startswith("python:3.11-slim") for f in froms
    )
    assert 'ENTRYPOINT ["activity-consumer"]' in text
    assert 'CMD ["run"]' in text
    assert re.search(r"^EXPOSE 9400$", text, re.M)
    assert "PYTHONUNBUFFERED=1" in text
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), "must run as non-root"
    assert re.search(r"pip install \.$", text, re.M), "runtime dependencies only, no extras"
    # The contract ships inside the wheel (setup.py): the image needs no copy of its own, no override.
    assert "COPY avro " not in text and "ACTIVITY_AVRO_DIR" not in text
    ignored = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert not {"setup.py", "avro", "avro/"} & {line.strip() for line in ignored}, "the wheel build needs them"
    instructions = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\[(dev|demo)\b|EXTRAS=\S*(dev|demo)", instructions), "no dev deps in the image"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "activity-consumer" in scripts


def test_dockerignore() -> None:
    entries = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "tests", ".git"} <= entries
    assert not {"consumer", "pyproject.toml", "avro"} & entries


# --------------------------------------------------------------------------------------------
# Grafana dashboard


def _dashboard() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DASHBOARD.read_text()))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows
    return [p for p in out if p["type"] != "row"]


def _exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel.get("targets", []) if t.get("expr")]


def test_dashboard_structure() -> None:
    dashboard = _dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = _panels(dashboard)
    ids = [p["id"] for p in dashboard["panels"]] + [
        p["id"] for row in dashboard["panels"] for p in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert _exprs(panel), f"panel {panel['title']!r} has no query"
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]


def test_dashboard_uses_only_known_metrics() -> None:
    unknown = {}
    for panel in _panels(_dashboard()):
        names = set().union(*(metric_names(e) for e in _exprs(panel)))
        bad = sorted(n for n in names if not is_known_metric(n))
        if bad:
            unknown[panel["title"]] = bad
    assert not unknown, f"dashboard queries unknown metrics: {unknown}"


REQUIRED_PANELS: dict[str, tuple[set[str], str]] = {
    # topic: (metrics one panel must query together, extra substring its queries must contain)
    "throughput consumed": ({"activity_consumer_events_consumed_total"}, "rate("),
    "throughput processed": ({"activity_consumer_events_processed_total"}, "rate("),
    "consumer lag per partition": ({"activity_consumer_lag_messages"}, "partition"),
    "event age quantiles": (
        {"activity_consumer_event_age_seconds_bucket"},
        "histogram_quantile(0.99",
    ),
    "dead-letter rate by reason": ({"activity_consumer_dead_letters_total"}, "by (reason)"),
    "decode errors": ({"activity_consumer_decode_errors_total"}, ""),
    "redemptions by result": ({"voucherify_redemptions_total"}, "by (result)"),
    "discounts redeemed": ({"voucherify_redeemed_discount_amount_minor_units_total"}, ""),
    "loyalty points by operation": ({"voucherify_loyalty_points_total"}, "by (operation)"),
    "notification failure rate by channel": (
        {"voucherify_notifications_total"},
        'outcome="failed"',
    ),
    "consent changes": ({"voucherify_consent_changes_total"}, ""),
    "orders by status": ({"voucherify_orders_total"}, "by (status)"),
    "order amounts and discounts": (
        {"voucherify_order_amount_minor_units_total", "voucherify_order_discount_minor_units_total"},
        "by (status)",
    ),
    "loyalty tier changes": ({"voucherify_loyalty_tier_changes_total"}, "by (change)"),
    "pending and expired points": (
        {"voucherify_loyalty_pending_points_total", "voucherify_loyalty_points_expired_total"},
        "by (operation)",
    ),
    "reward redemptions by status": ({"voucherify_reward_redemptions_total"}, "by (status)"),
    "reward redemptions by reward type": ({"voucherify_reward_redemptions_total"}, "reward_type"),
    "validation failure ratio": ({"voucherify_validations_total"}, 'result="failed"'),
    "validations by failure code": ({"voucherify_validations_total"}, "failure_code"),
    "commits and rebalances": ({"activity_consumer_commits_total"}, ""),
    "rebalances": ({"activity_consumer_rebalances_total"}, ""),
    "producer queue": ({"activity_consumer_producer_queue_messages"}, ""),
    # the webhook gateway's row
    "gateway requests by outcome and status": ({"activity_gateway_requests_total"}, "by (outcome, status)"),
    "gateway 5xx ratio": ({"activity_gateway_requests_total"}, 'status=~"5.."'),
    "gateway signature failures": ({"activity_gateway_signature_failures_total"}, ""),
    "gateway ack latency p50": ({"activity_gateway_ack_seconds_bucket"}, "histogram_quantile(0.5,"),
    "gateway ack latency p99": ({"activity_gateway_ack_seconds_bucket"}, "histogram_quantile(0.99,"),
    "gateway in-flight requests": ({"activity_gateway_in_flight_requests"}, ""),
    "gateway ignored deliveries": ({"activity_gateway_ignored_total"}, "by (event_family)"),
    "gateway dead letters by reason": ({"activity_gateway_dead_letters_total"}, "by (reason)"),
    "gateway bodies over the limit": ({"activity_gateway_requests_total"}, 'outcome="too_large"'),
}


@pytest.mark.parametrize("topic", sorted(REQUIRED_PANELS))
def test_dashboard_has_panel_for(topic: str) -> None:
    metrics, fragment = REQUIRED_PANELS[topic]
    for panel in _panels(_dashboard()):
        exprs = _exprs(panel)
        names = set().union(*(metric_names(e) for e in exprs))
        if metrics <= names and fragment in "\n".join(exprs) and panel["type"] == "timeseries":
            return
    pytest.fail(f"no time-series panel for {topic} (querying {sorted(metrics)} with {fragment!r})")


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses each query as a recording rule, after substituting Grafana's variables.
    rules = []
    for i, panel in enumerate(_panels(_dashboard())):
        for j, expr in enumerate(_exprs(panel)):
            concrete = (
                expr.replace("$__rate_interval", "5m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("$instance", ".*")
            )
            assert "$" not in concrete, f"unhandled Grafana variable in {expr!r}"
            rules.append({"record": f"dashboard:panel{i}:query{j}", "expr": concrete})
    rule_file = tmp_path / "dashboard-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _assert_ok(_run([_promtool(), "check", "rules", str(rule_file)]))
