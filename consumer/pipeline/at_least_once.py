"""At-least-once: commit each partition's offsets once every record produced below them is acknowledged."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Unpack

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumer.model import TP
from consumer.pipeline.checkpoint import Checkpoint, Hooks
from consumer.pipeline.sink import Sink
from consumer.pipeline.tickets import DeliveryFailed, Ticket
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics

log = get_logger("consumer.pipeline.at_least_once")

# librdkafka always answers a commit; this only guards against waiting forever for a lost answer.
COMMIT_ANSWER_TIMEOUT_S = 30.0


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
        self,
        sink: Sink,
        metrics: PipelineMetrics,
        grace_seconds: float,
        *,
        max_batches: int = 1,
        **common: Unpack[Hooks],
    ) -> None:
        super().__init__(sink, metrics, grace_seconds, **common)
        batch_size = self.batch_size
        self.bound = max_batches * batch_size
        self.pause_above = max(self.bound - batch_size, self.bound // 2)
        self._parts: dict[TP, Progress] = {}
        self._commit_sent_at: float | None = None  # one async commit in flight at a time
        self.failed = False

    def _first_seen(self, key: TP, offset: int) -> None:
        # Before this member's first commit of a partition, its committed offset is where it began reading.
        if key not in self._parts:
            self._parts[key] = Progress(last=offset, sent=offset, ready=offset, read=offset)

    def begin_batch(self) -> None:
        """Nothing to open: a batch is its tickets."""

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        """Nothing yet: a partition is tracked from its first event (`_first_seen`)."""

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
            with self.guard.guard("commit", self.grace):
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
