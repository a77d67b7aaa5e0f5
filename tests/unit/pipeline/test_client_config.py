"""One librdkafka config builder for every client: the other role's keys never pass through,
the guarantee's own keys always win, and no module assembles a client config of its own."""

from __future__ import annotations

import ast
from pathlib import Path

from consumer.kafka_keys import CONSUMER_ONLY, PRODUCER_ONLY
from consumer.pipeline.clients import client_config

PACKAGE = Path(__file__).resolve().parents[3] / "consumer"
KAFKA = {"group.id": "from-env", "linger.ms": "50", "security.protocol": "SSL", "acks": "1"}


def test_each_role_drops_the_other_roles_keys_and_its_own_properties_win() -> None:
    consumer = client_config("consumer", "b:9092", KAFKA, own={"group.id": "mine"})
    producer = client_config("producer", "b:9092", KAFKA, defaults={"linger.ms": 5}, own={"acks": "all"})
    admin = client_config("admin", "b:9092", KAFKA)
    assert not PRODUCER_ONLY & consumer.keys() and consumer["group.id"] == "mine"
    assert not CONSUMER_ONLY & producer.keys() and producer["acks"] == "all" and producer["linger.ms"] == "50"
    assert not (PRODUCER_ONLY | CONSUMER_ONLY) & admin.keys()
    for config in (consumer, producer, admin):
        assert config["bootstrap.servers"] == "b:9092" and config["security.protocol"] == "SSL"
        assert "logger" in config  # librdkafka's lines go through structlog


def test_no_module_assembles_a_client_config_of_its_own() -> None:
    builders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "bootstrap.servers" for k in node.keys
            ):
                builders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert [b.partition(":")[0] for b in builders] == ["consumer/pipeline/clients.py"], builders
