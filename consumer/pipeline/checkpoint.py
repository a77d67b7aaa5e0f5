"""The one place that decides what is committed.

- `AtLeastOnce`: an offset is committed only when every record produced for every event
  up to it has been acknowledged by the broker (tracked with the sink's `Ticket`s).
- `ExactlyOnce`: each batch is one transaction: results, dead letters and the consumed
  offsets (`send_offsets_to_transaction`) commit or abort together.

Rebalance callbacks run inside `consume()`, that is between batches, so no batch is
half-processed when partitions are revoked.
"""

from __future__ import annotations

import time
from collections import deque

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from consumer.pipeline.sink import DeliveryFailed, Sink, Ticket
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics

log = get_logger("consumer.pipeline.checkpoint")

TP = tuple[str, int]


class Checkpoint:
    """Shared batch bookkeeping: one ticket per partition per batch."""

    def __init__(self, sink: Sink, metrics: PipelineMetrics, grace_seconds: float) -> None:
        self.sink = sink
        self.metrics = metrics
        self.grace = grace_seconds
        self.consumer: Consumer | None = None
        self._batch: dict[TP, Ticket] = {}

    def attach(self, consumer: Consumer) -> None:
        self.consumer = consumer

    def ticket(self, topic: str, partition: int, offset: int) -> Ticket:
        key = (topic, partition)
        t = self._batch.get(key)
        if t is None:
            t = self._batch[key] = Ticket()
        t.next_offset = offset + 1
        return t

    def _take_batch(self) -> dict[TP, Ticket]:
        batch, self._batch = self._batch, {}
        for t in batch.values():
            t.sealed = True
        return batch

    def _committed(self, offsets: list[TopicPartition]) -> None:
        self.metrics.commits.inc()
        self.metrics.last_commit.set(time.time())
        log.debug("committed", partitions=len(offsets))

    def fail_batch(self, exc: KafkaException) -> None:
        """Producing failed part-way through a batch (not a delivery report: produce() raised)."""
        raise DeliveryFailed(f"produce failed: {exc.args[0]}")

    # Overridden by the modes.
    def begin_batch(self) -> None: ...
    def end_batch(self) -> None: ...
    def poll(self) -> None: ...
    def on_assign(self, partitions: list[TopicPartition]) -> None: ...
    def on_revoke(self, partitions: list[TopicPartition]) -> None: ...
    def on_lost(self, partitions: list[TopicPartition]) -> None: ...
    def close(self) -> None: ...

    def in_flight(self) -> bool:
        return self.sink.queue_length() > 0


class AtLeastOnce(Checkpoint):
    """Before the next poll, wait (briefly) for the last batch's acks and commit them, so a
    crash re-delivers at most the batch in hand."""

    delivery_wait = 1.0

    def __init__(self, sink: Sink, metrics: PipelineMetrics, grace_seconds: float) -> None:
        super().__init__(sink, metrics, grace_seconds)
        self._owed: dict[TP, deque[Ticket]] = {}
        self._ready: dict[TP, int] = {}  # delivered up to here
        self._last: dict[TP, int] = {}  # committed up to here
        self.failed = False

    def end_batch(self) -> None:
        for key, t in self._take_batch().items():
            self._owed.setdefault(key, deque()).append(t)

    def poll(self) -> None:
        if any(self._owed.values()):
            self.sink.flush(self.delivery_wait)
        self.commit_ready()

    def in_flight(self) -> bool:
        return any(self._owed.values()) or super().in_flight()

    def _advance(self, only: set[TP] | None) -> None:
        """Move each partition's ready offset past its delivered tickets; raise if one failed."""
        for key, owed in self._owed.items():
            if only is not None and key not in only:
                continue
            while owed and owed[0].done:
                if owed[0].error is not None:
                    self.failed = True  # nothing at or past it may be committed, ever
                    raise DeliveryFailed(f"{key[0]}[{key[1]}]: {owed[0].error}")
                self._ready[key] = owed.popleft().next_offset

    def commit_ready(self, only: set[TP] | None = None) -> None:
        """Commit every delivered offset not yet committed; a failed commit is retried next time."""
        assert self.consumer is not None
        self._advance(only)
        offsets = [
            TopicPartition(t, p, off)
            for (t, p), off in self._ready.items()
            if (only is None or (t, p) in only) and off > self._last.get((t, p), -1)
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self.metrics.commit_failures.inc()
            log.warning("commit_failed", error=str(exc.args[0]))
            return
        self._committed(offsets)
        for tp in offsets:
            self._last[(tp.topic, tp.partition)] = tp.offset

    def _drain(self, keys: set[TP]) -> None:
        """Flush deliveries and commit what they complete, within the grace period."""
        left = self.sink.flush(self.grace)
        if left:
            log.warning("flush_incomplete", in_flight=left)
        self.commit_ready(only=keys)

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        keys = {(p.topic, p.partition) for p in partitions}
        try:
            if not self.failed:  # after a lost delivery, the last good commit stands
                self._drain(keys)
        finally:
            self._forget(keys)

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        # Another member owns them now: committing would overwrite its progress.
        self._forget({(p.topic, p.partition) for p in partitions})

    def _forget(self, keys: set[TP]) -> None:
        for key in keys:
            self._owed.pop(key, None)
            self._ready.pop(key, None)
            self._last.pop(key, None)

    def close(self) -> None:
        if not self.failed:
            self._drain(set(self._owed))


class ExactlyOnce(Checkpoint):
    def __init__(self, sink: Sink, metrics: PipelineMetrics, grace_seconds: float) -> None:
        super().__init__(sink, metrics, grace_seconds)
        self._open = False
        self.sink.producer.init_transactions(max(grace_seconds, 30.0))

    def begin_batch(self) -> None:
        if not self._open:
            self.sink.producer.begin_transaction()
            self._open = True

    def end_batch(self) -> None:
        assert self.consumer is not None
        batch = self._take_batch()
        if not self._open:
            return
        offsets = [TopicPartition(t, p, tk.next_offset) for (t, p), tk in batch.items()]
        try:
            if offsets:
                self.sink.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), self.grace
                )
            self._commit_transaction()
            self._open = False
            if offsets:
                self._committed(offsets)
        except KafkaException as exc:
            self._open = False
            self._recover(exc.args[0], offsets)

    def fail_batch(self, exc: KafkaException) -> None:
        batch = self._take_batch()
        self._open = False
        self._recover(exc.args[0], [TopicPartition(t, p) for (t, p) in batch])

    def _commit_transaction(self) -> None:
        for attempt in range(3):
            try:
                self.sink.producer.commit_transaction(self.grace)
                return
            except KafkaException as exc:
                if exc.args[0].retriable() and attempt < 2:
                    continue
                raise

    def _recover(self, err: KafkaError, offsets: list[TopicPartition]) -> None:
        self.metrics.commit_failures.inc()
        if err.fatal():
            raise DeliveryFailed(f"fatal transactional error: {err}")
        log.warning("transaction_aborted", error=str(err))
        for attempt in range(3):
            try:
                self.sink.producer.abort_transaction(self.grace)
                break
            except KafkaException as exc:
                e = exc.args[0]
                if attempt == 2 or e.fatal() or not (e.retriable() or e.txn_requires_abort()):
                    raise DeliveryFailed(f"abort failed: {e}") from None
        self._rewind([TopicPartition(tp.topic, tp.partition) for tp in offsets])

    def _rewind(self, partitions: list[TopicPartition]) -> None:
        """Go back to the last committed offsets: the aborted batch is read again."""
        assert self.consumer is not None
        if not partitions:
            return
        for tp in self.consumer.committed(partitions, timeout=self.grace):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def close(self) -> None:
        if self._open:
            try:
                self.sink.producer.abort_transaction(self.grace)
            except KafkaException as exc:
                log.warning("abort_on_close_failed", error=str(exc.args[0]))
            self._open = False


def for_mode(exactly_once: bool, sink: Sink, metrics: PipelineMetrics, grace: float) -> Checkpoint:
    return (ExactlyOnce if exactly_once else AtLeastOnce)(sink, metrics, grace)
