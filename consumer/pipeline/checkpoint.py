"""The one place that decides what is committed: the interface every delivery guarantee implements.

- `AtLeastOnce` (at_least_once.py): an offset is committed only when every record produced for
  every event up to it has been acknowledged by the broker (tracked with the sink's `Ticket`s).
- `ExactlyOnce` (exactly_once.py): each batch is one transaction: results, dead letters and the
  consumed offsets commit or abort together.

Every method runs on the worker's loop thread: the loop's own calls between polls, and the
rebalance callbacks inside `consume()`, so no batch is half-processed when partitions move.
"""

from __future__ import annotations

import abc
import contextlib
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import Any, Protocol, Required, TypedDict

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumer.model import TP
from consumer.pipeline.tickets import DeliveryAudit, DeliveryFailed, Ticket
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics

log = get_logger("consumer.pipeline.checkpoint")


class CallGuard(Protocol):
    """Bounds a blocking librdkafka call the worker cannot interrupt (runtime/watchdog.py)."""

    def guard(self, what: str, timeout_s: float) -> AbstractContextManager[None]:
        """Around one call that should return within `timeout_s`; what happens if it does not
        is the guard's to decide (the runtime's ends the process). Never raises itself."""
        ...


class Unguarded:
    """A CallGuard that only runs the call: for tests, where nothing may end the process."""

    def guard(self, what: str, timeout_s: float) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


class Offsets(Protocol):
    """The consumer-side calls a checkpoint makes; `Source` implements them (a fake in unit tests).
    Called on the loop thread only."""

    def commit(self, offsets: list[TopicPartition], *, asynchronous: bool) -> None:
        """Commit `offsets` (the next offset to read, per partition). Asynchronous: returns at
        once, the answer comes to `Checkpoint.on_commit`. Synchronous: blocks until the
        coordinator answers. Raises KafkaException when the commit is refused."""
        ...

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read the partition again from `offset` on the next poll. Does not block."""
        ...

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        """The group's committed offsets; blocks up to `timeout`. Raises KafkaException."""
        ...

    def group_metadata(self) -> Any:
        """The consumer group's metadata, for `Transactions.send_offsets`."""
        ...


class Transactions(Protocol):
    """The sink's transactional calls, the only way a checkpoint reaches a producer (exactly-once).
    Each blocks up to its timeout and raises KafkaException (`.args[0]` says whether the error
    is retriable, needs an abort, or is fatal); called on the loop thread only."""

    audit: DeliveryAudit

    def init_transactions(self, timeout_s: float) -> None:
        """Once, before the first transaction: fences an older producer with the same id."""
        ...

    def begin_transaction(self) -> None:
        """Open a transaction: what the sink produces from now on belongs to it."""
        ...

    def send_offsets(self, offsets: list[TopicPartition], group_metadata: Any, timeout_s: float) -> None:
        """Make committing `offsets` for the group part of the open transaction."""
        ...

    def commit_transaction(self, timeout_s: float) -> None:
        """Commit the open transaction: its records and offsets become visible together."""
        ...

    def abort_transaction(self, timeout_s: float) -> None:
        """Abort the open transaction: nothing of it is ever visible to read_committed readers."""
        ...

    def drain(self, timeout: float) -> int:
        """Serve delivery reports until none is owed or `timeout` passes; how many are left."""
        ...


class Hooks(TypedDict, total=False):
    """What every checkpoint is handed besides its sink, metrics and grace (see Checkpoint)."""

    guard: Required[CallGuard]
    batch_size: int
    on_committed: Callable[[Ticket], None]
    on_rewound: Callable[[TP, int], None]


class Checkpoint(abc.ABC):
    """Batch bookkeeping shared by the guarantees: one ticket per partition per batch.

    Everything a mode needs comes in through the constructor (`attach` gives the consumer,
    which is built after the checkpoint because its callbacks call into it). `on_committed`
    hears of each ticket whose offsets are committed; `on_rewound` of each partition sought
    back to re-process from an offset (the gate lowers a registry hold to it).
    """

    def __init__(
        self,
        sink: Any,
        metrics: PipelineMetrics,
        grace_seconds: float,
        *,
        guard: CallGuard,
        batch_size: int = 500,
        on_committed: Callable[[Ticket], None] = lambda _t: None,
        on_rewound: Callable[[TP, int], None] = lambda _k, _o: None,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.grace = grace_seconds
        self.guard = guard
        self.batch_size = batch_size
        self.on_committed = on_committed
        self.on_rewound = on_rewound
        self.consumer: Offsets | None = None
        self._batch: dict[TP, Ticket] = {}

    def attach(self, consumer: Offsets) -> None:
        """Once, before the first poll: the consumer whose offsets this checkpoint commits."""
        self.consumer = consumer

    def ticket(self, topic: str, partition: int, offset: int) -> Ticket:
        """The ticket of the open batch for this partition, counting the event at `offset`.
        Called for every event of a batch, between `begin_batch` and `end_batch`."""
        key = (topic, partition)
        t = self._batch.get(key)
        if t is None:
            t = self._batch[key] = Ticket(self.sink.audit)
            self._first_seen(key, offset)
        t.next_offset = offset + 1
        return t

    @abc.abstractmethod
    def _first_seen(self, key: TP, offset: int) -> None:
        """A partition's first event in this batch, from `ticket`. Never blocks."""

    def blocked(self) -> set[TP]:
        """Partitions that must not be fetched until their commits catch up. Before each poll;
        never blocks."""
        return set()

    def poll_size(self, paused: Collection[TP]) -> int:
        """How many messages the next poll may return. Before each poll; never blocks."""
        return self.batch_size

    @abc.abstractmethod
    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's answer to an asynchronous commit, inside `consume()`. Never blocks."""

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
        """Producing failed part-way through the open batch (produce() raised, not a delivery
        report). Instead of `end_batch`. Raises DeliveryFailed unless the mode can recover."""
        raise DeliveryFailed(f"produce failed: {exc.args[0]}")

    def in_flight(self) -> bool:
        """Whether anything is still owed an acknowledgement or a commit. Never blocks."""
        return int(self.sink.queue_length()) > 0

    @abc.abstractmethod
    def begin_batch(self) -> None:
        """Before the first event of a batch is processed. May block (exactly-once opens a
        transaction); raises KafkaException, or DeliveryFailed when nothing can go on."""

    @abc.abstractmethod
    def end_batch(self) -> None:
        """After every result of the batch was handed to the sink. May block up to a few times
        the grace period (exactly-once drains and commits); raises DeliveryFailed when a delivery
        failed for good (the worker then exits 1, committing nothing past it)."""

    @abc.abstractmethod
    def poll(self) -> None:
        """Once per loop turn, after the poll. Never blocks; raises DeliveryFailed as `end_batch`."""

    @abc.abstractmethod
    def on_assign(self, partitions: list[TopicPartition]) -> None:
        """Partitions assigned, inside `consume()`. Never blocks."""

    @abc.abstractmethod
    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Partitions revoked, inside `consume()`: the last chance to commit them. May block up
        to the grace period."""

    @abc.abstractmethod
    def on_lost(self, partitions: list[TopicPartition]) -> None:
        """Partitions lost (the session expired: another member may own them). Never commits."""

    @abc.abstractmethod
    def close(self) -> None:
        """Once, at shutdown, after the last batch: commit what was delivered (within the grace),
        abort what was not."""
