"""Helpers for the fault matrix on Tansu: cheap large streams, a background producer, workers as
processes, and committed offsets."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from consumer.contract import H_ACTIVITY_ID
from consumer.ingest.records import customer_key
from consumer.kafka_io import produce_waiting
from consumer.pipeline.codec import AvroCodec
from tests.support.workers import Record, read_all, templates

Event = tuple[str, str | bytes | None, bytes | None]
_PLACEHOLDER = "evcus_PLACEHOLDER_0000"  # as long as every id below (22 characters)


def fast_stream(n: int, seed: int) -> list[tuple[str, str | None, bytes]]:
    """Like `workers.make_stream(n)`, about 50x cheaper: each template is encoded once and
    its id (a fixed-length Avro string) is replaced in the bytes."""
    codec = AvroCodec()
    encoded: list[tuple[str | None, bytes]] = []
    for event in templates():
        event = dict(event, id=_PLACEHOLDER)
        value = codec.encode_json(event)
        assert value.count(_PLACEHOLDER.encode()) == 1
        encoded.append((customer_key(event), value))
    run = uuid.uuid4().hex[:4]
    out: list[tuple[str, str | None, bytes]] = []
    for i in range(n):
        key, value = encoded[i % len(encoded)]
        activity_id = f"evcus_{seed % 100:02d}{run}{i:010d}"
        assert len(activity_id) == len(_PLACEHOLDER)
        out.append((activity_id, key, value.replace(_PLACEHOLDER.encode(), activity_id.encode())))
    return out


class Trickle:
    """Produces a stream in the background at about `rate` events/s (keys and values as given;
    each record carries an `activity-id` header)."""

    def __init__(self, bootstrap: str, topic: str, stream: Sequence[Event], rate: float, **config: Any) -> None:
        self.errors: list[str] = []
        self.sent = 0
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                "enable.idempotence": True,
                "message.timeout.ms": 120_000,
                **config,
            }
        )
        self._thread = threading.Thread(target=self._run, args=(topic, stream, rate), daemon=True)
        self._thread.start()

    def _report(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))

    def _run(self, topic: str, stream: Sequence[Event], rate: float) -> None:
        started = time.monotonic()
        for i, (activity_id, key, value) in enumerate(stream):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            headers = [(H_ACTIVITY_ID, activity_id.encode())]
            produce_waiting(self._producer, topic, value, key, headers, self._report)
            self._producer.poll(0)
            self.sent += 1

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def finish(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background producer did not finish"
        assert self._producer.flush(timeout) == 0, "the background producer's records were not all acknowledged"
        assert not self.errors, self.errors[:3]


def produce_all(bootstrap: str, topic: str, stream: Iterable[Event], **config: Any) -> None:
    """Produce now (any key and value bytes, None included) and wait for every acknowledgement."""
    trickle = Trickle(bootstrap, topic, list(stream), rate=1e9, **config)
    trickle.finish()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (negative: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def log_ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Per partition, the offset after its last record (read, not asked: Tansu 0.6's watermark
    answers are not the log end)."""
    ends = {p: 0 for p in range(partitions)}
    for (_t, p), end in ends_of(read_all(bootstrap, [topic], isolation="read_uncommitted")).items():
        ends[p] = end
    return ends


def wait_committed_to_end(bootstrap: str, group: str, topic: str, partitions: int, timeout: float) -> None:
    ends = log_ends(bootstrap, topic, partitions)
    deadline = time.monotonic() + timeout
    while (now := {p: max(o, 0) for p, o in committed(bootstrap, group, topic, partitions).items()}) != ends:
        assert time.monotonic() < deadline, f"commits did not reach {ends} in {timeout}s: {now}"
        time.sleep(0.25)


def ends_of(records: Iterable[Record]) -> dict[tuple[str, int], int]:
    """Per partition, the offset after the last of `records`."""
    ends: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        ends[key] = max(ends.get(key, 0), r.offset + 1)
    return ends


def wait_for_log(path: Path, text: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        assert proc is None or proc.poll() is None, f"worker exited: {path.read_text(errors='replace')[-2000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in {path} after {timeout}s"
        time.sleep(0.05)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


class TransactionView:
    """What a Kafka read_committed reader sees of output written by workers that were SIGKILLed.

    Tansu 0.6 (like librdkafka's mock) does not filter aborted records for read_committed
    readers, so they are located by offset instead: right after each kill, everything below the
    last stable offset was committed, and everything from there to the log end belongs to the
    killed worker's open transaction, which the next worker's `init_transactions` aborts.
    """

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.aborted: list[tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]] = []

    def after_kill(self) -> None:
        time.sleep(1.0)  # requests the dead process had already sent may still land
        stable = ends_of(read_all(self.bootstrap, self.topics))  # stops at the last stable offset
        written = ends_of(read_all(self.bootstrap, self.topics, isolation="read_uncommitted"))
        self.aborted.append((stable, written))

    def committed(self, records: Iterable[Record]) -> list[Record]:
        """`records` (read_uncommitted, in the end) less those of the killed workers' open transactions."""
        out = []
        for r in records:
            key = (r.topic, r.partition)
            if not any(stable.get(key, 0) <= r.offset < written.get(key, 0) for stable, written in self.aborted):
                out.append(r)
        return out
