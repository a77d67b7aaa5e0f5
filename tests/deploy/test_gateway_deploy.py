"""The webhook gateway's objects (`activity-consumer ingest`), rendered with kustomize for the
base and every overlay: Deployment, Services, Ingress, PDB, HPA, NetworkPolicy, its secret from a
Secret, and how Prometheus finds it. Strict offline validation of every rendered object is in
test_deploy.test_manifests_validate_offline; these checks say the gateway is there and wired."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from consumer.cli.main import _parser
from consumer.config import GatewaySettings, specs_of
from consumer.ingest.gateway import WEBHOOK_PATH
from tests.support.kustomize import (
    GATEWAY_JOB,
    K8S_VERSION,
    KUSTOMIZATIONS,
    PROM_CONFIG,
    _all,
    _env,
    _kubernetes_validate,
    _one,
    _quantity,
    _render,
)

GATEWAY_ENV = {spec.env for spec in specs_of(GatewaySettings).values()}
REQUIRED_KINDS = {
    "Deployment",
    "Service",
    "Ingress",
    "ServiceAccount",
    "ConfigMap",
    "PodDisruptionBudget",
    "NetworkPolicy",
}


def _gateway(kustomization: str) -> list[dict[str, Any]]:
    return _render(kustomization, "gateway")


def _pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(_one(docs, "Deployment")["spec"]["template"]["spec"])


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _pod(docs)["containers"]
    return dict(container)


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in _all(docs, kind) if d["metadata"]["name"] == name]
    return doc


def _config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return dict(_one(docs, "ConfigMap")["data"])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_objects_render_and_validate_strictly(kustomization: str) -> None:
    docs = _gateway(kustomization)
    kinds = {d["kind"] for d in docs}
    assert kinds >= REQUIRED_KINDS, f"gateway lacks {REQUIRED_KINDS - kinds}"
    kv = _kubernetes_validate()
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # the ServiceMonitor: checked below
        kv.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_runs_ingest_from_the_workers_image(kustomization: str) -> None:
    docs, worker = _gateway(kustomization), _render(kustomization)
    container = _container(docs)
    (worker_container,) = _one(worker, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == worker_container["image"]
    assert "command" not in container, "the image's ENTRYPOINT is activity-consumer"
    assert _parser().parse_args(container["args"]).command == "ingest"
    # Every setting it is given is one the gateway declares (a typo would be silently ignored).
    assert set(_config(docs)) <= GATEWAY_ENV, set(_config(docs)) - GATEWAY_ENV
    named_env = {n for n in _env(container) if not n.startswith("KAFKA_")}
    assert named_env <= GATEWAY_ENV, named_env - GATEWAY_ENV
    # The Kafka and log settings are the worker's ConfigMap; the topic is the one the worker reads.
    refs = [e["configMapRef"]["name"] for e in container["envFrom"]]
    worker_config = _one(worker, "ConfigMap")
    assert refs == [worker_config["metadata"]["name"], _one(docs, "ConfigMap")["metadata"]["name"]]
    topic = _env(container)["ACTIVITY_INGEST_TOPIC"]["valueFrom"]["configMapKeyRef"]
    assert (topic["name"], topic["key"]) == (worker_config["metadata"]["name"], "ACTIVITY_TOPICS")
    assert "," not in worker_config["data"]["ACTIVITY_TOPICS"], "the gateway writes one topic"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_port_probes_and_shutdown(kustomization: str) -> None:
    docs, worker = _gateway(kustomization), _render(kustomization)
    container, pod = _container(docs), _pod(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(_config(docs).get("ACTIVITY_INGEST_PORT", "8080"))}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    annotations = _one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["http"]) and annotations["prometheus.io/path"] == "/metrics"
    # SIGTERM: preStop, then the app's drain (answer in-flight requests, flush), then a margin.
    app_grace = float(_one(worker, "ConfigMap")["data"].get("ACTIVITY_SHUTDOWN_GRACE_SECONDS", "10"))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + app_grace + 5
    # The ack bound stays under Voucherify's 10 s.
    assert 0 < float(_config(docs).get("ACTIVITY_INGEST_ACK_TIMEOUT_SECONDS", "8")) < 10


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_secrets_come_from_secrets(kustomization: str) -> None:
    docs = _gateway(kustomization)
    container, pod = _container(docs), _pod(docs)
    env = _env(container)
    assert "VOUCHERIFY_WEBHOOK_SECRETS" not in env and "VOUCHERIFY_WEBHOOK_SECRETS" not in _config(docs)
    path = _config(docs)["VOUCHERIFY_WEBHOOK_SECRETS_FILE"]
    mounts = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert len(mounts) == 1, f"{path} is not under exactly one mount"
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[0]["name"])
    secret = volume["secret"]
    assert secret.get("optional", False) is False, "the gateway must not start without its secrets"
    file_name = path[len(mounts[0]["mountPath"].rstrip("/")) + 1 :]
    assert file_name in {item["path"] for item in secret["items"]}
    assert not _all(_render(kustomization, None), "Secret"), "Secrets are created out of band"
    for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "customer-activity-gateway-kafka"
        if kustomization == "overlays/production":
            assert ref["optional"] is False, f"{name}: production must not start without it"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_pod_security(kustomization: str) -> None:
    docs = _gateway(kustomization)
    container, pod = _container(docs), _pod(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["serviceAccountName"] == _one(docs, "ServiceAccount")["metadata"]["name"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert _quantity(container["resources"]["limits"]["memory"]) >= _quantity(
        container["resources"]["requests"]["memory"]
    )


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_services_ingress_and_pdb_select_its_pods(kustomization: str) -> None:
    docs = _gateway(kustomization)
    deployment = _one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    web = _named(docs, "Service", "customer-activity-gateway")
    metrics = _named(docs, "Service", "customer-activity-gateway-metrics")
    for service in (web, metrics):
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert web["spec"].get("clusterIP") != "None", "the Ingress backend balances over Ready pods"
    assert metrics["spec"]["clusterIP"] == "None" and metrics["spec"]["publishNotReadyAddresses"] is True
    # The Ingress exposes the webhook path only, to the web Service.
    ingress = _one(docs, "Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [(WEBHOOK_PATH, "Exact")]
    backend = paths[0]["backend"]["service"]
    assert backend["name"] == web["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in web["spec"]["ports"]}
    if kustomization == "overlays/production":
        (rule,) = ingress["spec"]["rules"]
        assert rule["host"] in ingress["spec"]["tls"][0]["hosts"], "Voucherify posts to https://"
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert "maxUnavailable" in pdb["spec"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_autoscaling(kustomization: str) -> None:
    docs = _gateway(kustomization)
    deployment = _one(docs, "Deployment")
    hpas = _all(docs, "HorizontalPodAutoscaler")
    if kustomization == "overlays/dev":
        assert not hpas and deployment["spec"]["replicas"] == 1
        return
    (hpa,) = hpas
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2, "one receiver is a single point of failure for Voucherify"
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    resources = {m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"}
    assert "cpu" in resources and "cpu" in _container(docs)["resources"]["requests"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_network_policy(kustomization: str) -> None:
    docs = _gateway(kustomization)
    policy = _one(docs, "NetworkPolicy")
    pod_labels = _one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    # In: the webhook port only (it serves /metrics too).
    ingress = policy["spec"]["ingress"]
    assert ingress and all(
        {(p["port"], p.get("protocol", "TCP")) for p in r["ports"]} == {("http", "TCP")} for r in ingress
    )
    if kustomization == "overlays/production":
        sources = {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in ingress[0]["from"]}
        assert sources == {"ingress-nginx", "monitoring"}
    # Out: the brokers the worker's ConfigMap names, the registry, DNS.
    kafka, registry, dns = policy["spec"]["egress"]
    brokers = _one(_render(kustomization), "ConfigMap")["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    assert {int(hp.rsplit(":", 1)[1]) for hp in brokers.split(",")} <= {p["port"] for p in kafka["ports"]}
    assert registry["ports"] and {p["port"] for p in dns["ports"]} == {53}
    if kustomization != "base":
        assert kafka.get("to") and registry.get("to"), "overlays narrow the destinations"


def test_prometheus_finds_the_gateway() -> None:
    docs = _gateway("overlays/production")
    metrics = _named(docs, "Service", "customer-activity-gateway-metrics")
    monitor = _one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    web = _named(docs, "Service", "customer-activity-gateway")
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= web["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    assert metrics["metadata"]["labels"][monitor["spec"]["jobLabel"]] == GATEWAY_JOB
    config = yaml.safe_load(PROM_CONFIG.read_text())
    (job,) = [sc for sc in config["scrape_configs"] if sc["job_name"] == GATEWAY_JOB]
    expected = f"{metrics['metadata']['name']}.{metrics['metadata']['namespace']}.svc"
    names = [n for sd in job["dns_sd_configs"] for n in sd["names"]]
    assert names and all(n.startswith(expected) for n in names), (names, expected)
    assert {sd["port"] for sd in job["dns_sd_configs"]} == {metrics["spec"]["ports"][0]["port"]}
