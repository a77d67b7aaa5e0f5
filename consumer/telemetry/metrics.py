"""Pipeline metrics: one registry, a bounded label set, Prometheus naming.

Labels only ever hold catalogue types (or `other`), families, stream names, bounded
reasons, framings and topic/partition numbers: never ids, emails or campaign names.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumer.catalogue import FAMILIES, KNOWN_TYPES, OTHER
from consumer.config import environment

AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
HANDLER_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1)


class PipelineMetrics:
    """The worker's own health and throughput, per the names in deploy/prometheus/alerts.yml."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "activity_consumer_"
        self.consumed = Counter(f"{p}events_consumed", "Events read from Kafka, by type.", ["type"], registry=registry)
        self.processed = Counter(
            f"{p}events_processed",
            "Events handled and forwarded, counted once their batch is committed, by type.",
            ["type"],
            registry=registry,
        )
        self.handler_duration = Histogram(
            f"{p}handler_duration_seconds",
            "Time spent in a handler per event, by family.",
            ["family"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
        self.event_age = Histogram(
            f"{p}event_age_seconds",
            "Now minus the event's created_at when it is processed.",
            buckets=AGE_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            f"{p}lag_messages",
            "Consumer lag per assigned partition, from librdkafka statistics.",
            ["topic", "partition"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.dead_letters = Counter(
            f"{p}dead_letters",
            "Records dead-lettered, counted once their batch is committed, by reason.",
            ["reason"],
            registry=registry,
        )
        self.decode_errors = Counter(
            f"{p}decode_errors",
            "Events that could not be decoded, by framing.",
            ["framing"],
            registry=registry,
        )
        self.retries = Counter(f"{p}retries", "Handler retries, by family.", ["family"], registry=registry)
        self.commits = Counter(f"{p}commits", "Successful offset commits.", registry=registry)
        self.commit_failures = Counter(f"{p}commit_failures", "Failed offset commits.", registry=registry)
        self.rebalances = Counter(
            f"{p}rebalances", "Partition assignment changes, by kind.", ["kind"], registry=registry
        )
        self.producer_queue = Gauge(
            f"{p}producer_queue_messages",
            "Records waiting in the producer's queue.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.last_commit = Gauge(
            f"{p}last_commit_timestamp_seconds",
            "Unix time of the last successful commit.",
            registry=registry,
            multiprocess_mode="max",
        )
        self.results = Counter(
            f"{p}results_produced",
            "Results acknowledged downstream and committed with their input, by stream.",
            ["stream"],
            registry=registry,
        )
        self.avro_engine = Gauge(
            f"{p}avro_engine_info",
            "The Avro engine that decodes events and encodes results: 1 for the one in use.",
            ["engine", "version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.registry_unavailable = Counter(
            f"{p}registry_unavailable",
            "Schema Registry lookups that failed for the registry's sake (not the event's): the "
            "partition is held at the event and retried, never dead-lettered.",
            registry=registry,
        )
        self.paused_partitions = Gauge(
            f"{p}paused_partitions",
            "Assigned partitions not being fetched, by reason: backpressure (too much read past "
            "the last commit) or registry (waiting to retry a Schema Registry lookup).",
            ["reason"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        for reason in ("backpressure", "registry"):
            self.paused_partitions.labels(reason)
        for t in (*KNOWN_TYPES, OTHER):
            self.consumed.labels(t)
            self.processed.labels(t)
        for f in FAMILIES:
            self.retries.labels(f)
        for kind in ("assign", "revoke", "lost"):
            self.rebalances.labels(kind)

    def forget_partition(self, topic: str, partition: int) -> None:
        """A partition moved to another member: its lag is that member's to report now."""
        if environment().prometheus_multiproc_dir:
            self.lag.labels(topic, str(partition)).set(0)  # multiprocess files cannot drop a series
        else:
            with contextlib.suppress(KeyError):
                self.lag.remove(topic, str(partition))

    def observe_stats(self, stats_json: str) -> dict[str, Any]:
        """librdkafka `stats_cb` payload -> per-partition consumer lag; returns the parsed stats."""
        stats: dict[str, Any] = json.loads(stats_json)
        for topic, tstats in stats.get("topics", {}).items():
            for part, pstats in tstats.get("partitions", {}).items():
                if part == "-1":
                    continue
                lag = pstats.get("consumer_lag", -1)
                if lag >= 0 and pstats.get("fetch_state") not in ("none", "stopped"):
                    self.lag.labels(topic, part).set(lag)
        return stats


def new_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)
