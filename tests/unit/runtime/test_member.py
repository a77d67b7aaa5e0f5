"""The group member's callbacks: what it owns, what the gate forgets, and which client errors stop it."""

from __future__ import annotations

import json
from typing import Any, cast

from confluent_kafka import KafkaError, TopicPartition

from consumer.pipeline.checkpoint import Checkpoint
from consumer.pipeline.gate import GatePolicy
from consumer.runtime.member import Member
from consumer.telemetry.business_metrics import BusinessMetrics
from consumer.telemetry.metrics import PipelineMetrics, new_registry
from consumer.telemetry.probes import Health
from consumer.telemetry.tallies import Tallies


class FakeCheckpoint:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(partitions: list[TopicPartition]) -> None:
            self.calls.append((name, [(p.topic, p.partition) for p in partitions]))

        return record


def member(own_output: Any = None) -> tuple[Member, FakeCheckpoint, GatePolicy, Health, Any, list[int]]:
    registry = new_registry()
    metrics = PipelineMetrics(registry)
    checkpoint, gate, health, stops = FakeCheckpoint(), GatePolicy(lambda _n: 1000.0), Health(), []
    m = Member(
        cast(Checkpoint, checkpoint),
        gate,
        Tallies(metrics, BusinessMetrics(registry)),
        metrics,
        health,
        own_output,
        lambda: stops.append(1),
    )
    return m, checkpoint, gate, health, registry, stops


def tps(*keys: tuple[str, int]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, p in keys]


def test_an_assignment_is_owned_and_its_new_source_topics_named_but_never_our_own_outputs() -> None:
    m, checkpoint, _, health, registry, _ = member(own_output=lambda t: t.endswith(".dlq"))
    m.on_assign(None, tps(("a", 0), ("a", 1), ("a.dlq", 0)))  # type: ignore[arg-type]
    assert m.assigned == {("a", 0), ("a", 1), ("a.dlq", 0)}
    assert m.new_sources == {"a"}
    assert health.assigned == 3 and health.connected
    assert checkpoint.calls == [("on_assign", [("a", 0), ("a", 1), ("a.dlq", 0)])]
    assert registry.get_sample_value("activity_consumer_rebalances_total", {"kind": "assign"}) == 1


def test_revoked_and_lost_partitions_are_released_by_the_checkpoint_and_forgotten_by_the_gate() -> None:
    m, checkpoint, gate, health, registry, _ = member()
    m.on_assign(None, tps(("a", 0), ("a", 1), ("a", 2)))  # type: ignore[arg-type]
    gate.hold(("a", 0), 5, now=0)
    gate.plan({("a", 1)}, now=0)
    m.on_revoke(None, tps(("a", 0)))  # type: ignore[arg-type]
    m.on_lost(None, tps(("a", 1)))  # type: ignore[arg-type]
    assert m.assigned == {("a", 2)} and health.assigned == 1
    assert gate.holds == {} and gate.paused == {}
    assert checkpoint.calls[1:] == [("on_revoke", [("a", 0)]), ("on_lost", [("a", 1)])]
    for kind in ("revoke", "lost"):
        assert registry.get_sample_value("activity_consumer_rebalances_total", {"kind": kind}) == 1


def test_refused_credentials_stop_the_worker_once_and_brokers_down_mark_it_disconnected() -> None:
    m, _, _, health, _, stops = member()
    health.connected = True
    m.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert not health.connected and m.fatal is None and stops == []
    m.on_error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error"))
    m.on_error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error"))
    assert m.fatal is not None and m.fatal.startswith("authentication failed: SASL authentication error")
    assert stops == [1]


def test_statistics_bring_readiness_back_once_a_broker_is_up_even_with_no_message_flowing() -> None:
    """After an outage an idle worker reads nothing that would say the broker is back: the
    statistics do (`/readyz` answers 200 again without waiting for traffic)."""
    m, _, _, health, registry, _ = member()

    def stats(*states: str) -> str:
        brokers = {f"b{i}": {"nodeid": i, "state": s} for i, s in enumerate(states)}
        brokers["GroupCoordinator"] = {"nodeid": -1, "state": "UP"}  # logical: not a sign of a broker
        return json.dumps({"brokers": brokers, "topics": {"t": {"partitions": {"0": {"consumer_lag": 7}}}}})

    m.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    assert not health.connected
    m.on_stats(stats("DOWN", "CONNECT"))
    assert not health.connected
    m.on_stats(stats("DOWN", "UP"))
    assert health.connected
    assert registry.get_sample_value("activity_consumer_lag_messages", {"topic": "t", "partition": "0"}) == 7
    m.on_stats(stats("DOWN", "TRY_CONNECT"))
    assert not health.connected
