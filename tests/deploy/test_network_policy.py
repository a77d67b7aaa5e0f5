"""The NetworkPolicy (metrics in; Kafka, Schema Registry and DNS out, ports from the overlay)
and the DLQ replay Job example, rendered with kustomize and validated strictly offline."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from consumer.cli.main import _parser
from tests.support.kustomize import K8S_VERSION, KUSTOMIZATIONS, _kubernetes_validate, _one, _render

REPLAY_EXAMPLE = "examples/dlq-replay"


def _ports(rule: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(p["port"], p.get("protocol", "TCP")) for p in rule.get("ports", [])}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_network_policy_allows_metrics_in_and_kafka_registry_dns_out(kustomization: str) -> None:
    docs = _render(kustomization)
    policy = _one(docs, "NetworkPolicy")
    deployment = _one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), "the policy must select the worker's pods"
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]

    # In: the metrics port only (by name, so it follows the container).
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"] for p in container["ports"]} == {"metrics"}
    ingress = policy["spec"]["ingress"]
    assert ingress and all(_ports(rule) == {("metrics", "TCP")} for rule in ingress)

    # Out: Kafka, the registry, DNS; nothing without a port.
    kafka, registry, dns = policy["spec"]["egress"]
    assert _ports(dns) == {(53, "UDP"), (53, "TCP")} and dns["to"]
    config = _one(docs, "ConfigMap")["data"]
    broker_ports = {int(hp.rsplit(":", 1)[1]) for hp in config["KAFKA_BOOTSTRAP_SERVERS"].split(",")}
    assert broker_ports <= {port for port, _ in _ports(kafka)}, "egress must reach the configured brokers"
    assert _ports(registry)
    if url := config.get("SCHEMA_REGISTRY_URL"):
        parts = urlsplit(url)
        assert (parts.port or (443 if parts.scheme == "https" else 80)) in {p for p, _ in _ports(registry)}
    if kustomization != "base":
        assert kafka.get("to") and registry.get("to"), "overlays narrow the destinations"


def test_network_policy_ports_are_set_by_the_overlays() -> None:
    def kafka_ports(k: str) -> set[tuple[Any, str]]:
        return _ports(_one(_render(k), "NetworkPolicy")["spec"]["egress"][0])

    assert kafka_ports("overlays/production") == {(9093, "TCP")}
    assert kafka_ports("overlays/dev") == {(9092, "TCP")}


def test_dlq_replay_job_example_validates_and_matches_the_worker() -> None:
    docs = _render(REPLAY_EXAMPLE)
    job = _one(docs, "Job")
    deployment = _one(docs, "Deployment")
    kv = _kubernetes_validate()
    kv.validate(job, K8S_VERSION, strict=True)
    # Same namespace, image and ConfigMap as the worker of the overlay it renders against.
    assert job["metadata"]["namespace"] == deployment["metadata"]["namespace"] == "customer-activity"
    worker = deployment["spec"]["template"]["spec"]["containers"][0]
    (replay,) = job["spec"]["template"]["spec"]["containers"]
    assert replay["image"] == worker["image"]
    assert replay["envFrom"] == worker["envFrom"]
    assert replay["envFrom"][0]["configMapRef"]["name"] == _one(docs, "ConfigMap")["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert pod["securityContext"]["runAsNonRoot"] and replay["securityContext"]["readOnlyRootFilesystem"]
    # The command is one our CLI accepts.
    args = [a.replace("$(ACTIVITY_DLQ_TOPIC)", "customer-activity-dlq") for a in replay["args"]]
    parsed = _parser().parse_args(args)
    assert (parsed.command, parsed.dlq_command, parsed.topic) == ("dlq", "replay", "customer-activity-dlq")
    # The env var the args refer to exists in the ConfigMap.
    assert "ACTIVITY_DLQ_TOPIC" in _one(docs, "ConfigMap")["data"]
    # Only the Job is new: the rest is the production overlay unchanged.
    assert {d["kind"] for d in docs} - {d["kind"] for d in _render("overlays/production")} == {"Job"}
