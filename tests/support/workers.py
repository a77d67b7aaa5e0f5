"""Helpers for worker tests on a real broker: streams of events in, everything out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from consumer.contract import H_ACTIVITY_ID
from consumer.devtools.corpus import REPO, templates
from consumer.ingest.records import customer_key
from consumer.kafka_io import produce_waiting
from consumer.pipeline.codec import AvroCodec
from consumer.telemetry.kafka_logs import routed

# A worker's group settings for quick joins on Tansu (tests/support/broker.py, FAST_GROUP_CONFIG, says
# why), as `Settings.kafka` and as the environment of a worker process.
TANSU_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "group.protocol": "classic"}
TANSU_GROUP_ENV = {"KAFKA_" + k.upper().replace(".", "_"): v for k, v in TANSU_GROUP.items()}


@dataclass
class Sent:
    ids: list[str]
    poison_ids: list[str]
    unknown_ids: list[str]


def make_stream(n: int, *, unknown: int = 0, poison: int = 0, seed: int = 1) -> list[tuple[str, str | None, bytes]]:
    """n events cycling through every template, `unknown` of a future type, `poison` undecodable.

    Returns (activity id, key, framed value) triples; poison values carry a real id header only.
    """
    codec = AvroCodec()
    base = templates()
    out: list[tuple[str, str | None, bytes]] = []
    for i in range(n):
        event = dict(base[i % len(base)])
        event["id"] = f"evcus_{seed:02d}{i:08d}{uuid.uuid4().hex[:6]}"
        out.append((event["id"], customer_key(event), codec.encode_json(event)))
    for i in range(unknown):
        event = dict(base[i % len(base)])
        event["id"] = f"evcus_unk{i:06d}{uuid.uuid4().hex[:6]}"
        event["type"] = "customer.teleported"
        out.append((event["id"], customer_key(event), codec.encode_json(event)))
    for i in range(poison):
        out.append((f"evcus_bad{i:06d}{uuid.uuid4().hex[:6]}", f"cust_bad{i}", b"\x00\x00\x00\x00\x07garbage"))
    return out


def produce(
    bootstrap: str, topic: str, stream: Iterable[tuple[str, str | None, bytes]], partition: int | None = None
) -> None:
    producer = Producer(routed({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True}))
    errors: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for activity_id, key, value in stream:
        headers = [(H_ACTIVITY_ID, activity_id.encode())]
        produce_waiting(producer, topic, value, key, headers, report, partition=partition)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def read_all(
    bootstrap: str,
    topics: list[str],
    timeout: float = 30.0,
    isolation: str = "read_committed",
    config: Mapping[str, str] | None = None,
) -> list[Record]:
    """Every record of `topics` up to the end a reader of `isolation` may reach; `config` adds
    client settings (TLS, SASL).

    For read_committed that end is the last stable offset: an open transaction's records,
    and anything after them, are not read.
    """
    consumer = Consumer(
        routed(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": isolation,
                "enable.partition.eof": True,
                **(config or {}),
            }
        )
    )
    try:
        md = consumer.list_topics(timeout=10)
        tps = [TopicPartition(t, p, 0) for t in topics if t in md.topics for p in md.topics[t].partitions]
        if not tps:
            return []
        consumer.assign(tps)
        # The end is where the broker says EOF: the log end for read_uncommitted, the last
        # stable offset for read_committed (watermark queries are not isolation-aware on Tansu).
        remaining = {(tp.topic, tp.partition) for tp in tps}
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard((m.topic(), m.partition()))
                    continue
                out.append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), dict(m.headers() or [])))
        assert not remaining, f"did not reach the end of {sorted(remaining)}"
        return out
    finally:
        consumer.close()


def end_offsets(records: Iterable[Record]) -> dict[tuple[str, int], int]:
    """Per partition, the offset after the last of `records`."""
    ends: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        ends[key] = max(ends.get(key, 0), r.offset + 1)
    return ends


def output_topics(bootstrap: str, input_topic: str) -> list[str]:
    admin_consumer = Consumer(routed({"bootstrap.servers": bootstrap, "group.id": "lister"}))
    try:
        names = admin_consumer.list_topics(timeout=10).topics
        return sorted(t for t in names if t.startswith(input_topic + "."))
    finally:
        admin_consumer.close()


def worker_command(
    bootstrap: str,
    topic: str | None,
    group: str,
    *,
    guarantee: str = "at-least-once",
    idle: float | None = 4.0,
    batch_size: int = 100,
    metrics_port: int = 0,
    extra: list[str] | None = None,
) -> list[str]:
    """The command line of `activity-consumer run` (topic None: pass `--pattern` in `extra`)."""
    return [
        sys.executable,
        "-m",
        "consumer.cli",
        "run",
        "--bootstrap-servers",
        bootstrap,
        *(["--topics", topic] if topic else []),
        "--group-id",
        group,
        "--processing-guarantee",
        guarantee,
        "--metrics-port",
        str(metrics_port),
        "--batch-size",
        str(batch_size),
        "--log-format",
        "json",
        *(["--stop-when-idle", str(idle)] if idle else []),
        *(extra or []),
    ]


def worker_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A worker process's environment: this one, quick Tansu group joins, then `env`."""
    return {**os.environ, **TANSU_GROUP_ENV, **(env or {})}


def start_worker(
    bootstrap: str,
    topic: str | None,
    group: str,
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    **options: Any,
) -> subprocess.Popen[bytes]:
    """`activity-consumer run` in a subprocess; `options` are `worker_command`'s, stdout and
    stderr go to `log_path`."""
    args = worker_command(bootstrap, topic, group, **options)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(args, cwd=REPO, env=worker_env(env), stdout=out, stderr=subprocess.STDOUT)
    STARTED.append(proc)
    return proc


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int | None:
    """SIGTERM (a clean leave) if it still runs; its exit code, or None if it had to be killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


# Every worker process started here; `stop_leftover_workers` (tests/conftest.py) kills the ones a
# failed test left running, so no worker outlives its test.
STARTED: list[subprocess.Popen[bytes]] = []


def stop_leftover_workers() -> None:
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_for_records(bootstrap: str, topics: list[str], at_least: int, timeout: float = 60.0) -> int:
    """Poll high watermarks until the topics hold `at_least` records in all."""
    consumer = Consumer(routed({"bootstrap.servers": bootstrap, "group.id": "watcher"}))
    try:
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            md = consumer.list_topics(timeout=10)
            total = 0
            for t in topics:
                if t in md.topics:
                    for p in md.topics[t].partitions:
                        total += consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            if total >= at_least:
                return total
            time.sleep(0.05)
        return total
    finally:
        consumer.close()


def expected_results(stream: Iterable[tuple[str, str | None, bytes]]) -> dict[str, int]:
    """How many records each event yields when processed once (results, or one dead letter)."""
    from consumer.model import activity_from_record
    from consumer.pipeline.codec import DecodeError
    from consumer.pipeline.router import Router

    codec, router = AvroCodec(), Router()
    out: dict[str, int] = {}
    for activity_id, _key, value in stream:
        try:
            out[activity_id] = len(router.route(activity_from_record(codec.decode(value))))
        except DecodeError:
            out[activity_id] = 1
    return out


def activity_ids(records: Iterable[Record]) -> list[str]:
    return [r.headers[H_ACTIVITY_ID].decode() for r in records if H_ACTIVITY_ID in r.headers]
