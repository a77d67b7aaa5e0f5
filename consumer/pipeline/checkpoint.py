"""The one place that decides what is committed.

- `AtLeastOnce`: an offset is committed only when every record produced for every event
  up to it has been acknowledged by the broker (tracked with the sink's `Ticket`s).
- `ExactlyOnce`: each batch is one transaction: results, dead letters and the consumed
  offsets (`send_offsets_to_transaction`) commit or abort together.

Rebalance callbacks run inside `consume()`, that is between batches, so no batch is
half-processed when partitions are revoked.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from consumer.model import TP
from consumer.pipeline.sink import Sink
from consumer.pipeline.tickets import DeliveryFailed, Ticket
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics

log = get_logger("consumer.pipeline.checkpoint")

# librdkafka always answers a commit; this only guards against waiting forever for a lost answer.
COMMIT_ANSWER_TIMEOUT_S = 30.0
# Exactly-once: how many times commit_transaction() is tried (a retriable error: the broker away).
COMMIT_TRIES = 3


class CallWatchdog:
    """Ends the process (exit 1, one log line) when a blocking librdkafka call outlives its timeout.

    Transactions: after a broker restart, librdkafka 2.16's `send_offsets_to_transaction(..., timeout)` was
    seen blocking for minutes (in `rd_kafka_txn_op_req0`, a condition wait without a deadline),
    so the worker neither progressed nor exited. Nothing can interrupt that C call; exiting is
    safe: the open transaction commits nothing, the next instance's `init_transactions` aborts
    it, and the restarted worker reads from the last committed offsets. A synchronous offset
    commit (revoke, shutdown) waits for a coordinator with no deadline when the broker is gone, and
    no signal can stop the worker then: exiting leaves the offsets where they are, so the next
    owner reads what was not committed again. One daemon thread; a call costs two lock round trips.
    """

    def __init__(self, margin_s: float) -> None:
        self.margin = margin_s
        self._cond = threading.Condition()
        self._call: tuple[str, float] | None = None  # (what, deadline); a new tuple per call
        threading.Thread(target=self._watch, name="call-watchdog", daemon=True).start()

    @contextlib.contextmanager
    def guard(self, what: str, timeout_s: float) -> Iterator[None]:
        call = (what, time.monotonic() + timeout_s + self.margin)
        with self._cond:
            self._call = call
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                if self._call is call:
                    self._call = None

    def _watch(self) -> None:
        with self._cond:
            while True:
                call = self._call
                if call is None:
                    self._cond.wait()
                    continue
                left = call[1] - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                if self._call is call:
                    self._expire(call[0])

    def _expire(self, what: str) -> None:
        log.error(
            "kafka_call_stuck",
            call=what,
            action="exit 1: nothing uncommitted is lost; a restarted worker reads it again",
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(1)


class Offsets(Protocol):
    """The consumer-side calls the checkpoint makes: `Source` implements them (a fake in unit tests)."""

    def commit(self, offsets: list[TopicPartition], *, asynchronous: bool) -> None: ...
    def seek(self, topic: str, partition: int, offset: int) -> None: ...
    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]: ...
    def group_metadata(self) -> Any: ...


class Checkpoint:
    """Shared batch bookkeeping: one ticket per partition per batch."""

    def __init__(self, sink: Sink, metrics: PipelineMetrics, grace_seconds: float) -> None:
        self.sink = sink
        self.metrics = metrics
        self.grace = grace_seconds
        self.consumer: Offsets | None = None
        self._batch: dict[TP, Ticket] = {}
        self.watchdog = CallWatchdog(margin_s=max(5.0, grace_seconds))
        self.on_committed: Callable[[Ticket], None] = lambda _t: None
        # A partition sought back to re-process (partition, offset): a registry hold further on
        # must not seek past it again (the gate lowers its hold to here).
        self.on_rewound: Callable[[TP, int], None] = lambda _k, _o: None
        self.batch_size = 500

    def attach(self, consumer: Offsets) -> None:
        self.consumer = consumer

    def ticket(self, topic: str, partition: int, offset: int) -> Ticket:
        key = (topic, partition)
        t = self._batch.get(key)
        if t is None:
            t = self._batch[key] = Ticket(self.sink.audit)
            self._first_seen(key, offset)
        t.next_offset = offset + 1
        return t

    def _first_seen(self, key: TP, offset: int) -> None: ...

    def blocked(self) -> set[TP]:
        """Partitions that must not be fetched until their commits catch up."""
        return set()

    def poll_size(self, paused: Collection[TP]) -> int:
        """How many messages the next poll may return."""
        return self.batch_size

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None: ...

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


@dataclass(slots=True)
class Progress:
    """One partition's progress in this member. Offsets are the next to read, as Kafka commits
    them, and only grow in this order: last <= sent <= ready <= read."""

    last: int  # confirmed committed up to here (before this member's first commit: where it began)
    sent: int  # a commit up to here is in flight, or confirmed
    ready: int  # every result below it acknowledged
    read: int  # taken into a sealed batch up to here
    owed: deque[Ticket] = field(default_factory=deque)  # sealed slices awaiting acks, in order
    done: deque[Ticket] = field(default_factory=deque)  # acknowledged, awaiting the commit's confirmation


class AtLeastOnce(Checkpoint):
    """Commit each partition's offsets as its tickets are acknowledged, asynchronously, so the
    next poll never waits on acks or on a commit round trip.

    Re-delivery stays bounded by `bound = max_batches * batch_size` offsets per partition:
    `poll_size()` never lets one poll carry a partition past it, and `blocked()` names the
    partitions too close to it for a useful poll (past `bound - batch_size`, or half the bound),
    which the worker pauses until their commits catch up. A crash therefore re-delivers at most
    `bound` events per partition. Pausing throws away what librdkafka prefetched for the
    partition (it is fetched again on resume), so the bound must leave room for the batches that
    are in flight while their acks and commit come back: at 2 x 500 a backlog was fetched 3.1
    times over (31 pauses for 30,000 events on Tansu), at 8 x 500 once.
    """

    def __init__(
        self, sink: Sink, metrics: PipelineMetrics, grace_seconds: float, *, batch_size: int = 500, max_batches: int = 1
    ) -> None:
        super().__init__(sink, metrics, grace_seconds)
        self.batch_size = batch_size
        self.bound = max_batches * batch_size
        self.pause_above = max(self.bound - batch_size, self.bound // 2)
        self._parts: dict[TP, Progress] = {}
        self._commit_sent_at: float | None = None  # one async commit in flight at a time
        self.failed = False

    def _first_seen(self, key: TP, offset: int) -> None:
        # Before this member's first commit of a partition, its committed offset is where it began reading.
        if key not in self._parts:
            self._parts[key] = Progress(last=offset, sent=offset, ready=offset, read=offset)

    def end_batch(self) -> None:
        for key, t in self._take_batch().items():
            part = self._parts[key]
            part.owed.append(t)
            part.read = t.next_offset

    def uncommitted(self) -> dict[TP, int]:
        """Per partition, offsets read past the last confirmed commit (what a crash re-delivers)."""
        return {key: p.read - p.last for key, p in self._parts.items()}

    def blocked(self) -> set[TP]:
        return {key for key, n in self.uncommitted().items() if n > self.pause_above}

    def poll_size(self, paused: Collection[TP]) -> int:
        """The most one poll may return so that no fetched partition passes the bound."""
        worst = max((n for key, n in self.uncommitted().items() if key not in paused), default=0)
        return max(1, min(self.batch_size, self.bound - worst))

    def poll(self) -> None:
        """Non-blocking: move past what was acknowledged and send its commit. One commit is in
        flight at a time; the next carries every offset delivered meanwhile."""
        self._advance(None)
        sent = self._commit_sent_at
        if sent is not None:
            if time.monotonic() - sent < COMMIT_ANSWER_TIMEOUT_S:
                return
            # The answer never came: what it carried is sent again, not only what is newer.
            for part in self._parts.values():
                part.sent = part.last
        self._commit_sent_at = None
        self._commit(None, asynchronous=True)

    def in_flight(self) -> bool:
        return any(p.owed or p.ready > p.last for p in self._parts.values()) or super().in_flight()

    def _advance(self, only: set[TP] | None, *, rewind: bool = True) -> None:
        """Move each partition's ready offset past its delivered tickets; raise if one failed.

        A slice whose acknowledgement is unverified stops its partition there: with `rewind`,
        the partition is read again from that slice (its events and later ones are processed
        again: duplicates, never a gap); without (revoke, close), nothing past it is committed.
        """
        for key, part in self._parts.items():
            if only is not None and key not in only:
                continue
            owed = part.owed
            while owed and owed[0].done:
                if owed[0].error is not None:
                    self.failed = True  # nothing at or past it may be committed, ever
                    raise DeliveryFailed(f"{key[0]}[{key[1]}]: {owed[0].error}")
                if owed[0].unverified:
                    if rewind:
                        self._rewind_unverified(key, part)
                    break
                t = owed.popleft()
                part.ready = t.next_offset
                part.done.append(t)

    def _rewind_unverified(self, key: TP, part: Progress) -> None:
        """Read `key` again from the first event whose results' acknowledgement is unverified.

        Every slice after it is dropped too (its late reports settle orphaned tickets), so the
        partition is re-processed from there: at most `bound` events again, and no commit ever
        passes an event whose results were not seen stored.
        """
        assert self.consumer is not None
        start = part.ready
        part.owed.clear()
        part.read = start
        try:
            self.consumer.seek(key[0], key[1], start)
        except KafkaException as exc:
            self.failed = True  # exit 1 without committing past it: the restart reads it again
            raise DeliveryFailed(f"{key[0]}[{key[1]}]: unverified delivery; seek to {start} failed: {exc}") from None
        self.on_rewound(key, start)
        log.warning(
            "delivery_unverified",
            topic=key[0],
            partition=key[1],
            reprocess_from=start,
            why="a delivery report without a real offset (duplicate sequence after a broker restart)",
        )

    def _commit(self, only: set[TP] | None, *, asynchronous: bool) -> None:
        """Commit every delivered offset not yet sent (sync: not yet confirmed)."""
        assert self.consumer is not None
        offsets = [
            TopicPartition(t, p, part.ready)
            for (t, p), part in self._parts.items()
            if (only is None or (t, p) in only) and part.ready > (part.sent if asynchronous else part.last)
        ]
        if not offsets:
            return
        for tp in offsets:
            self._parts[(tp.topic, tp.partition)].sent = tp.offset
        try:
            if asynchronous:  # the outcome comes back through on_commit(), during a later poll
                self.consumer.commit(offsets, asynchronous=True)
                self._commit_sent_at = time.monotonic()
                return
            with self.watchdog.guard("commit", self.grace):
                self.consumer.commit(offsets, asynchronous=False)
        except KafkaException as exc:
            self._commit_failed(offsets, exc.args[0])
            return
        self._confirm(offsets)

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's offset_commit_cb: the outcome of an asynchronous commit."""
        self._commit_sent_at = None
        failed = [tp for tp in partitions if err is not None or tp.error is not None]
        if failed:
            self._commit_failed(failed, err or failed[0].error)
        good = [tp for tp in partitions if err is None and tp.error is None]
        if good:
            self._confirm(good)

    def _commit_failed(self, offsets: list[TopicPartition], err: KafkaError | None) -> None:
        self.metrics.commit_failures.inc()
        log.warning("commit_failed", error=str(err))
        for tp in offsets:  # sent again on the next poll
            part = self._parts.get((tp.topic, tp.partition))
            if part is not None:
                part.sent = part.last

    def _confirm(self, offsets: list[TopicPartition]) -> None:
        new = []
        for tp in offsets:
            part = self._parts.get((tp.topic, tp.partition))
            if part is None or tp.offset <= part.last:
                continue  # a late confirmation of what is known, or of a partition since released
            new.append(tp)
            part.last = tp.offset
            part.sent = max(part.sent, tp.offset)
            done = part.done
            while done and done[0].next_offset <= tp.offset:
                self.on_committed(done.popleft())
        if new:
            self._committed(new)

    def _drain(self, keys: set[TP]) -> None:
        """Flush deliveries and commit what they complete, within the grace period."""
        left = self.sink.flush(self.grace)
        if left:
            log.warning("flush_incomplete", in_flight=left)
        self._advance(keys, rewind=False)
        self._commit(keys, asynchronous=False)

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        keys = {(p.topic, p.partition) for p in partitions}
        try:
            # After a lost delivery or a fatal producer error, the last good commit stands.
            if not self.failed and self.sink.fatal is None:
                self._drain(keys)
        finally:
            self._forget(keys)

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        # Another member owns them now: committing would overwrite its progress.
        self._forget({(p.topic, p.partition) for p in partitions})

    def _forget(self, keys: set[TP]) -> None:
        for key in keys:
            self._parts.pop(key, None)

    def close(self) -> None:
        if not self.failed:
            self._drain(set(self._parts))


class ExactlyOnce(Checkpoint):
    def __init__(self, sink: Sink, metrics: PipelineMetrics, grace_seconds: float) -> None:
        super().__init__(sink, metrics, grace_seconds)
        self._open = False
        timeout = max(grace_seconds, 30.0)
        with self.watchdog.guard("init_transactions", timeout):
            self.sink.producer.init_transactions(timeout)

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
                with self.watchdog.guard("send_offsets_to_transaction", self.grace):
                    self.sink.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata(), self.grace)
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
                with self.watchdog.guard("commit_transaction", self.grace):
                    self.sink.producer.commit_transaction(self.grace)
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
                with self.watchdog.guard("abort_transaction", self.grace):
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
            self.consumer.seek(tp.topic, tp.partition, offset)
            self.on_rewound((tp.topic, tp.partition), offset)

    def close(self) -> None:
        if self._open:
            try:
                with self.watchdog.guard("abort_transaction", self.grace):
                    self.sink.producer.abort_transaction(self.grace)
            except KafkaException as exc:
                log.warning("abort_on_close_failed", error=str(exc.args[0]))
            self._open = False


def for_mode(
    exactly_once: bool,
    sink: Sink,
    metrics: PipelineMetrics,
    grace: float,
    *,
    batch_size: int = 500,
    max_batches: int = 1,
) -> Checkpoint:
    if exactly_once:
        checkpoint: Checkpoint = ExactlyOnce(sink, metrics, grace)
        checkpoint.batch_size = batch_size
        return checkpoint
    return AtLeastOnce(sink, metrics, grace, batch_size=batch_size, max_batches=max_batches)
