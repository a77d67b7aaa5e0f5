"""Exactly-once: each batch's results, dead letters and consumed offsets commit or abort together."""

from __future__ import annotations

from typing import Unpack

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from consumer.model import TP
from consumer.pipeline.checkpoint import Checkpoint, Hooks, Transactions
from consumer.pipeline.tickets import DeliveryFailed
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics

log = get_logger("consumer.pipeline.exactly_once")

# How many times commit_transaction() is tried (a retriable error: the broker away).
COMMIT_TRIES = 3


class ExactlyOnce(Checkpoint):
    """Each batch is one transaction, through the sink's `Transactions` (only the sink produces)."""

    def __init__(
        self, sink: Transactions, metrics: PipelineMetrics, grace_seconds: float, **common: Unpack[Hooks]
    ) -> None:
        super().__init__(sink, metrics, grace_seconds, **common)
        self.sink: Transactions = sink
        self._open = False
        timeout = max(grace_seconds, 30.0)
        with self.guard.guard("init_transactions", timeout):
            self.sink.init_transactions(timeout)

    def begin_batch(self) -> None:
        if not self._open:
            self.sink.begin_transaction()
            self._open = True

    def end_batch(self) -> None:
        assert self.consumer is not None
        batch = self._take_batch()
        if not self._open:
            return
        offsets = [TopicPartition(t, p, tk.next_offset) for (t, p), tk in batch.items()]
        try:
            # commit_transaction() flushes anyway; draining first lets an unverified
            # acknowledgement abort the transaction instead of committing it. The drain may take
            # as long as commit_transaction()'s flushes did (its tries, each up to the grace).
            self.sink.drain(self.grace * (1 + COMMIT_TRIES))
            suspect = [f"{t}[{p}]" for (t, p), tk in batch.items() if tk.unverified]
            if suspect:
                why = "a delivery report without a real offset (duplicate sequence after a broker restart)"
                error = KafkaError(KafkaError._INCONSISTENT, "unverified delivery")
                self._abandon("delivery_unverified", suspect, why, error, offsets)
                return
            # Reports still owed when the drain's deadline passed (a broker away that long) would
            # come back inside commit_transaction()'s own flush, past the audit: a made-up
            # one there commits these offsets with its results stored nowhere. Seen on Tansu: the
            # commit timed out, the abort was refused (commit in progress), the worker exited 1,
            # and the commit landed anyway. So no offsets are sent before every report is in.
            unsettled = [f"{t}[{p}]" for (t, p), tk in batch.items() if not tk.done]
            if unsettled:
                why = "delivery reports still owed after the drain: they could not be audited"
                error = KafkaError(KafkaError._TIMED_OUT, "delivery reports still owed")
                self._abandon("delivery_unsettled", unsettled, why, error, offsets)
                return
            if offsets:
                with self.guard.guard("send_offsets_to_transaction", self.grace):
                    self.sink.send_offsets(offsets, self.consumer.group_metadata(), self.grace)
            self._commit_transaction()
            self._open = False
            if offsets:
                self._committed(offsets)
            for t in batch.values():  # aborted batches are not counted: they are read again
                self.on_committed(t)
        except KafkaException as exc:
            self._open = False
            self._recover(exc.args[0], offsets)

    def fail_batch(self, exc: KafkaException) -> None:
        batch = self._take_batch()
        self._open = False
        self._recover(exc.args[0], [TopicPartition(t, p) for (t, p) in batch])

    def _abandon(
        self, event: str, partitions: list[str], why: str, error: KafkaError, offsets: list[TopicPartition]
    ) -> None:
        """The batch cannot be committed on its reports' word: abort it and read it again."""
        self._open = False
        log.warning(event, partitions=partitions, why=why)
        self._recover(error, offsets)

    def _commit_transaction(self) -> None:
        for attempt in range(COMMIT_TRIES):
            try:
                with self.guard.guard("commit_transaction", self.grace):
                    self.sink.commit_transaction(self.grace)
                return
            except KafkaException as exc:
                if exc.args[0].retriable() and attempt < COMMIT_TRIES - 1:
                    continue
                raise

    def _recover(self, err: KafkaError, offsets: list[TopicPartition]) -> None:
        self.metrics.commit_failures.inc()
        if err.fatal():
            raise DeliveryFailed(f"fatal transactional error: {err}")
        log.warning("transaction_aborted", error=str(err))
        for attempt in range(3):
            try:
                with self.guard.guard("abort_transaction", self.grace):
                    self.sink.abort_transaction(self.grace)
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
            self.consumer.seek(tp.topic, tp.partition, offset)
            self.on_rewound((tp.topic, tp.partition), offset)

    def close(self) -> None:
        if self._open:
            try:
                with self.guard.guard("abort_transaction", self.grace):
                    self.sink.abort_transaction(self.grace)
            except KafkaException as exc:
                log.warning("abort_on_close_failed", error=str(exc.args[0]))
            self._open = False

    def poll(self) -> None:
        """Nothing between batches: each batch commits (or aborts) in `end_batch`."""

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        """Nothing to track: a batch's offsets come with its tickets."""

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Nothing to commit: `end_batch` committed or aborted every batch before this callback."""

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        """Nothing to forget: the lost partitions' work was in a transaction already ended."""

    def _first_seen(self, key: TP, offset: int) -> None:
        """Nothing to track: a batch's offsets come with its tickets."""

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Never called: offsets are committed inside the transaction, not asynchronously."""
