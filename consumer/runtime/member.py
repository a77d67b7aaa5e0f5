"""This member of the consumer group, as librdkafka reports it: the partitions it owns, and
client errors (a broker away, credentials refused)."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, TopicPartition

from consumer.model import TP
from consumer.pipeline.checkpoint import Checkpoint
from consumer.pipeline.gate import GatePolicy
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics
from consumer.telemetry.probes import Health
from consumer.telemetry.tallies import Tallies

log = get_logger("consumer.runtime.member")

ERROR_LOG_EVERY_S = 30  # librdkafka repeats connection errors many times a second while a broker is away


class Member:
    """librdkafka's rebalance and error callbacks; they run inside `consume()`, between batches."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        gate: GatePolicy,
        tallies: Tallies,
        metrics: PipelineMetrics,
        health: Health,
        own_output: Callable[[str], bool] | None,
        stop: Callable[[], None],
    ) -> None:
        self.checkpoint, self.gate, self.tallies, self.metrics, self.health = checkpoint, gate, tallies, metrics, health
        self._own_output = own_output
        self._stop = stop
        self.assigned: set[TP] = set()
        self.new_sources: set[str] = set()  # source topics whose outputs the loop must create
        self.fatal: str | None = None  # set by a client error that retrying cannot fix
        self._error_logged: dict[int, float] = {}

    def on_assign(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.tallies.rebalance("assign")
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        self.health.assigned = len(self.assigned)
        self.health.connected = True
        # Output topics are made in the loop, not here: no blocking admin work in a callback.
        own = self._own_output
        self.new_sources |= {p.topic for p in partitions if not (own is not None and own(p.topic))}
        self.checkpoint.on_assign(partitions)
        log.info("partitions_assigned", partitions=[f"{p.topic}[{p.partition}]" for p in partitions])

    def on_revoke(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.tallies.rebalance("revoke")
        self.checkpoint.on_revoke(partitions)
        self._release(partitions)
        log.info("partitions_revoked", count=len(partitions))

    def on_lost(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.tallies.rebalance("lost")
        self.checkpoint.on_lost(partitions)
        self._release(partitions)
        log.warning("partitions_lost", count=len(partitions))

    def _release(self, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.assigned.difference_update(keys)
        self.gate.release(keys)
        for p in partitions:
            self.metrics.forget_partition(p.topic, p.partition)
        self.health.assigned = len(self.assigned)

    def on_stats(self, stats_json: str) -> None:
        """librdkafka's statistics (every few seconds): lag, and whether a broker is up again. An
        idle worker sees no message that would tell it the outage ended; readiness must not wait."""
        stats = self.metrics.observe_stats(stats_json)
        brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
        if brokers:
            self.health.connected = any(b.get("state") == "UP" for b in brokers)

    def on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.connected = False
        if err.code() == KafkaError._AUTHENTICATION and self.fatal is None:
            # Bad credentials do not heal by retrying: stop, and let the orchestrator say so.
            self.fatal = f"authentication failed: {err.str()}"
            self._stop()
        now = time.monotonic()
        if now - self._error_logged.get(err.code(), -1e9) >= ERROR_LOG_EVERY_S or err.fatal():
            self._error_logged[err.code()] = now
            log.warning(
                "kafka_error", error=str(err), fatal=err.fatal(), repeats_suppressed_for_seconds=ERROR_LOG_EVERY_S
            )
