"""Reading a dead-letter topic: its records with their headers parsed, filters, and a bounded
scan from given offsets up to the end the topic had when the scan began."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, Message, TopicPartition

from consumer.contract import (
    H_ACTIVITY_TYPE,
    H_DLQ_ERROR_CLASS,
    H_DLQ_FAILED_AT,
    H_DLQ_REASON_CODE,
    H_DLQ_REPLAY_COUNT,
    H_DLQ_SOURCE_TOPIC,
)
from consumer.errors import ConsumerError


class DlqError(ConsumerError):
    """An operator-facing failure: the message says what is wrong; the CLI exits non-zero."""


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter record and what its headers say."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int

    @classmethod
    def of(cls, msg: Message) -> DeadLetter:
        raw = msg.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        headers = [(str(k), v if isinstance(v, bytes | None) else str(v).encode()) for k, v in pairs]
        _, ts = msg.timestamp()
        return cls(msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value(), headers, int(ts))

    def header(self, name: str) -> str | None:
        """The last value of a header (the sink appends, so the last one is the newest)."""
        for k, v in reversed(self.headers):
            if k == name:
                return _text(v)
        return None

    @property
    def reason_code(self) -> str:
        return self.header(H_DLQ_REASON_CODE) or "unknown"

    @property
    def error_class(self) -> str:
        return self.header(H_DLQ_ERROR_CLASS) or "unknown"

    @property
    def source_topic(self) -> str | None:
        return self.header(H_DLQ_SOURCE_TOPIC)

    @property
    def activity_type(self) -> str:
        return self.header(H_ACTIVITY_TYPE) or "unknown"

    @property
    def failed_at_ms(self) -> int:
        """When it was dead-lettered: the sink's header, else the record's timestamp."""
        return _int(self.header(H_DLQ_FAILED_AT)) or self.timestamp_ms

    @property
    def replay_count(self) -> int:
        return _int(self.header(H_DLQ_REPLAY_COUNT)) or 0


@dataclass(frozen=True, slots=True)
class Filters:
    reasons: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, d: DeadLetter) -> bool:
        if self.reasons and d.reason_code not in self.reasons:
            return False
        if self.types and d.activity_type not in self.types:
            return False
        return self.since_ms is None or d.failed_at_ms >= self.since_ms

    def after_until(self, d: DeadLetter) -> bool:
        return self.until_ms is not None and d.failed_at_ms > self.until_ms

    @property
    def active(self) -> bool:
        return bool(self.reasons or self.types or self.since_ms is not None or self.until_ms is not None)


_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(text: str, flag: str, now: datetime | None = None) -> int:
    """`2026-11-27T10:00`, `2026-11-27T10:00:00+01:00` (no zone = UTC), or `30m`/`2h`/`1d` ago -> epoch ms."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(text.strip())
    if m:
        when = now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise DlqError(
                f"{flag} {text!r}: use an ISO 8601 time (2026-11-27T10:00, UTC unless a zone is given) "
                "or an age such as 30m, 2h, 1d"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scan:
    """Reads `topic` by assignment from `start` offsets (default: the beginning) up to the end
    each partition had when the scan began. `stop(partition)` ends one partition early."""

    def __init__(self, consumer: Consumer, topic: str, *, from_committed: bool, timeout_s: float = 30.0) -> None:
        self.consumer = consumer
        self.topic = topic
        self.timeout_s = timeout_s
        md = consumer.list_topics(topic, timeout=timeout_s)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            why = meta.error.str() if meta is not None and meta.error is not None else "it does not exist"
            raise DlqError(f"cannot read topic {topic!r}: {why}")
        partitions = sorted(meta.partitions)
        self.low: dict[int, int] = {}
        self.high: dict[int, int] = {}
        for p in partitions:
            self.low[p], self.high[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        self._settle_ends(partitions)
        self.start = dict(self.low)
        if from_committed:
            for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s):
                if tp.offset != OFFSET_INVALID and tp.offset >= 0:
                    self.start[tp.partition] = max(tp.offset, self.low[tp.partition])
        # position: the next offset to read, i.e. what a commit after this point would store
        self.position = dict(self.start)
        self._open = {p for p in partitions if self.start[p] < self.high[p]}
        self.total = sum(self.high[p] - self.start[p] for p in self._open)

    def _settle_ends(self, partitions: list[int]) -> None:
        """Read from just before each high watermark to the end: some brokers (Tansu 0.6) report
        the last batch's base offset + 1 as the high watermark, which hides the rest of that batch."""
        probe = [TopicPartition(self.topic, p, self.high[p] - 1) for p in partitions if self.high[p] > self.low[p]]
        if not probe:
            return
        self.consumer.assign(probe)
        waiting = {tp.partition for tp in probe}
        deadline = time.monotonic() + self.timeout_s
        while waiting and time.monotonic() < deadline:
            for msg in self.consumer.consume(500, 0.5):
                p = msg.partition() or 0
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(p)
                        continue
                    raise DlqError(f"reading {self.topic}[{p}]: {err.str()}")
                self.high[p] = max(self.high[p], (msg.offset() or 0) + 1)
        self.consumer.unassign()
        if waiting:
            raise DlqError(f"could not find the end of {self.topic} partitions {sorted(waiting)}")

    def stop(self, partition: int) -> None:
        if partition in self._open:
            self._open.discard(partition)
            self.consumer.pause([TopicPartition(self.topic, partition)])

    def batches(self, size: int = 500) -> Iterator[list[DeadLetter]]:
        if not self._open:
            return
        self.consumer.assign([TopicPartition(self.topic, p, self.start[p]) for p in sorted(self._open)])
        idle_since = time.monotonic()
        while self._open:
            batch: list[DeadLetter] = []
            for msg in self.consumer.consume(size, 0.5):
                err = msg.error()
                p = msg.partition() or 0
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        self._open.discard(p)
                        continue
                    raise DlqError(f"reading {self.topic}[{p}]: {err.str()}")
                if p not in self._open:
                    continue  # fetched before stop(p)
                d = DeadLetter.of(msg)
                batch.append(d)
                if d.offset + 1 >= self.high[p]:
                    self._open.discard(p)
            if batch:
                idle_since = time.monotonic()
                yield batch
            elif time.monotonic() - idle_since > self.timeout_s:
                left = ", ".join(f"[{p}] at {self.position[p]} of {self.high[p]}" for p in sorted(self._open))
                raise DlqError(f"no progress reading {self.topic} for {self.timeout_s:.0f}s: {left}")

    def advance(self, d: DeadLetter) -> None:
        """Mark `d` handled: a commit from now on stores the offset after it."""
        self.position[d.partition] = d.offset + 1

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p, off) for p, off in sorted(self.position.items()) if off > self.start[p]]
