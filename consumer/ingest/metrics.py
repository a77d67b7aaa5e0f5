"""The gateway's metrics, named once here (deploy/ dashboards and alerts read these names).

Labels hold bounded values only: outcomes, status codes, event families and reason codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumer.pipeline.codec.delivery_json import REASON_CODES

OUTCOMES: Final = (
    "accepted",
    "dead_lettered",
    "duplicate",
    "ignored",
    "unauthorized",
    "bad_request",
    "too_large",
    "unsupported_media_type",
    "not_found",
    "unavailable",
    "timeout",
    "overloaded",
)
ACK_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 8, 10)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        p = "activity_gateway_"
        self.requests = Counter(
            f"{p}requests",
            "Webhook requests answered, by outcome and HTTP status.",
            ["outcome", "status"],
            registry=registry,
        )
        self.signature_failures = Counter(
            f"{p}signature_failures", "Requests refused for a missing or wrong signature.", registry=registry
        )
        self.duplicates = Counter(
            f"{p}duplicates", "Re-sent deliveries answered 2xx without producing again.", registry=registry
        )
        self.ignored = Counter(
            f"{p}ignored",
            "Valid deliveries of non-customer events (answered 2xx, not produced), by event family.",
            ["event_family"],
            registry=registry,
        )
        self.dead_letters = Counter(
            f"{p}dead_letters",
            "Signed deliveries the mapping cannot read, kept in the gateway's dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in REASON_CODES:
            self.dead_letters.labels(reason)  # a zero from the start: rate() and alerts see the series
        self.ack_seconds = Histogram(
            f"{p}ack_seconds", "Produce to broker acknowledgement.", buckets=ACK_BUCKETS, registry=registry
        )
        self.in_flight = Gauge(f"{p}in_flight_requests", "Webhook requests being handled.", registry=registry)
        self.queue = Gauge(
            f"{p}producer_queue_messages",
            "Records in the producer's local queue, not yet acknowledged.",
            registry=registry,
        )

    def watch_queue(self, length: Callable[[], int]) -> None:
        self.queue.set_function(lambda: float(length()))
