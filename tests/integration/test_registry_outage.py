"""A Schema Registry outage is not the events' fault (issue 10, item 2): a worker on Tansu reads
Confluent-framed events whose schema ids it has not yet looked up while the registry (a real
HTTP double) is stopped, holds those partitions, reports not-ready, and once the registry is
back forwards every event: none is dead-lettered."""

from __future__ import annotations

import copy
import json
import socket
import struct
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

from consumer.pipeline.codec import DEFAULT_SUBJECT, SchemaStore
from consumer.pipeline.codec.registry import connect
from tests.support.registry_double import RegistryDouble
from tests.support.workers import (
    activity_ids,
    expected_results,
    make_stream,
    output_topics,
    produce,
    read_all,
    start_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
OUTAGE_S = 6.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def _register_variants(url: str, n: int) -> list[int]:
    """n registrations of the envelope that differ only in `doc`: n schema ids for one body layout."""
    registry = connect(url)
    assert registry is not None
    ids = []
    for i in range(n):
        schema = copy.deepcopy(SchemaStore().envelope)
        schema["doc"] = f"variant {i}"
        ids.append(registry.register(DEFAULT_SUBJECT, schema, schema["doc"]))
    assert len(set(ids)) == n
    return ids


def _confluent(stream: list[tuple[str, str | None, bytes]], ids: list[int]) -> list[tuple[str, str | None, bytes]]:
    """The same events in Confluent framing (the Avro body is the same), cycling through `ids`."""
    return [(a, k, b"\x00" + struct.pack(">I", ids[i % len(ids)]) + v[10:]) for i, (a, k, v) in enumerate(stream)]


def test_registry_outage_mid_stream_holds_partitions_and_dead_letters_nothing(
    kafka_bootstrap: str, new_topic: str, registry_double: RegistryDouble, tmp_path: Path
) -> None:
    first_ids, later_ids = _register_variants(registry_double.url, 1), _register_variants(registry_double.url, 5)[1:]
    before, during = make_stream(200, seed=1), make_stream(400, seed=2)
    produce(kafka_bootstrap, new_topic, _confluent(before, first_ids))
    port, log = _free_port(), tmp_path / "worker.log"
    proc = start_worker(
        kafka_bootstrap,
        new_topic,
        f"registry-{uuid.uuid4().hex[:8]}",
        idle=5,
        extra=["--schema-registry-url", registry_double.url, "--metrics-port", str(port)],
        log_path=log,
    )
    try:
        deadline = time.monotonic() + 60
        while _readyz(port)[0] != 200:  # joined, and the first part decoded with the registry up
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)

        registry_double.stop()
        # Ids the worker has not looked up yet: every partition meets them while the registry is down.
        produce(kafka_bootstrap, new_topic, _confluent(during, later_ids))
        not_ready: list[str] = []
        stop_at = time.monotonic() + OUTAGE_S
        while time.monotonic() < stop_at:
            code, body = _readyz(port)
            if code == 503:
                not_ready.append(body)
            time.sleep(0.2)
        registry_double.start()
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()

    held = [json.loads(line) for line in log.read_text().splitlines() if '"registry_unavailable"' in line]
    outputs = output_topics(kafka_bootstrap, new_topic)
    records = read_all(kafka_bootstrap, outputs)
    dead = [r for r in records if r.topic == f"{new_topic}.dlq"]
    forwarded = Counter(activity_ids(r for r in records if r.topic != f"{new_topic}.dlq"))
    expected = Counter(expected_results(before + during))
    print(
        f"sent {len(before) + len(during)}, forwarded {len(forwarded)}, dead-lettered {len(dead)}, "
        f"holds {len(held)} on partitions {sorted({h['partition'] for h in held})}, not-ready probes {len(not_ready)}"
    )

    assert held, "the outage was never met: the test proves nothing"
    assert any("schema registry unavailable" in b for b in not_ready)
    assert dead == []
    assert forwarded == expected  # every event, once (no re-delivery: nothing crashed)
