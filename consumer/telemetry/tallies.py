"""The worker's counts, gathered per batch and added to the metrics in one go.

Attempts (events consumed, decode errors, event ages) are added once per batch. Work done
(events processed, results, dead letters, business outcomes) is gathered per partition slice
(`Committed`) and added only once that slice is committed, so a re-delivery or an aborted
transaction never counts twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from consumer.model import Result
from consumer.telemetry.business_metrics import BusinessMetrics, BusinessTally
from consumer.telemetry.metrics import PipelineMetrics


class BatchTally:
    """One batch's attempts."""

    __slots__ = ("ages", "consumed", "decode_errors")

    def __init__(self) -> None:
        self.consumed: Counter[str] = Counter()  # by type label
        self.decode_errors: Counter[str] = Counter()  # by framing
        self.ages: list[float] = []  # seconds since each processed event was created


class Committed:
    """One partition's slice of one batch: what it did, counted once it is committed."""

    __slots__ = ("business", "dead_letters", "processed", "results")

    def __init__(self) -> None:
        self.processed: Counter[str] = Counter()
        self.results: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        # Counted as results are forwarded: a slice holds a few numbers, not its results.
        self.business = BusinessTally()

    def forwarded(self, label: str, results: Sequence[Result]) -> None:
        by_stream = self.results
        for r in results:
            by_stream[r.stream] += 1
        self.processed[label] += 1


class Tallies:
    """Adds tallies to the pipeline and business metrics."""

    def __init__(self, metrics: PipelineMetrics, business: BusinessMetrics) -> None:
        self.metrics = metrics
        self.business = business

    def forwarded(self, work: Committed, label: str, results: Sequence[Result]) -> None:
        """An event forwarded in `work`'s slice, with these results."""
        work.forwarded(label, results)
        self.business.count(results, work.business)

    def batch(self, tally: BatchTally) -> None:
        m = self.metrics
        for label, n in tally.consumed.items():
            m.consumed.labels(label).inc(n)
        for framing, n in tally.decode_errors.items():
            m.decode_errors.labels(framing).inc(n)
        for age in tally.ages:
            m.event_age.observe(age)

    def committed(self, work: Committed | None) -> None:
        if work is None:
            return
        m = self.metrics
        for label, n in work.processed.items():
            m.processed.labels(label).inc(n)
        for stream, n in work.results.items():
            m.results.labels(stream).inc(n)
        for reason, n in work.dead_letters.items():
            m.dead_letters.labels(reason).inc(n)
        self.business.apply(work.business)

    def rebalance(self, kind: str) -> None:
        self.metrics.rebalances.labels(kind).inc()

    def engine(self, name: str, version: str) -> None:
        """The Avro engine in use (an info gauge)."""
        self.metrics.avro_engine.labels(name, version).set(1)
