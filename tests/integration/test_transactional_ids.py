"""Two exactly-once workers of one group started on one host with default settings both run
to the end: each takes its own transactional id (the first `<group>-<host>`, the next
`<group>-<host>-1`), so neither fences the other, as one fixed id did (the broker fenced the
first: exit 1). A worker killed and started again in its place takes its id back."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.support.workers import (
    activity_ids,
    expected_results,
    make_stream,
    output_topics,
    produce,
    read_all,
    start_worker,
)

pytestmark = pytest.mark.integration


def _chosen_id(log: Path, timeout: float = 30.0) -> str:
    """The transactional id a worker logged at start (waits for the line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines() if log.exists() else []:
            if '"transactional_id_chosen"' in line:
                return str(json.loads(line)["transactional_id"])
        time.sleep(0.1)
    raise AssertionError(f"no transactional_id_chosen line in {log.name}")


def test_two_default_exactly_once_workers_on_one_host_both_run_to_the_end(
    kafka_bootstrap: str, new_topic: str, tmp_path: Path
) -> None:
    group = f"two-on-a-host-{uuid.uuid4().hex[:8]}"
    stream = make_stream(600, seed=7)
    produce(kafka_bootstrap, new_topic, stream)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = [
        start_worker(kafka_bootstrap, new_topic, group, guarantee="exactly-once", idle=8, log_path=p) for p in logs
    ]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0], [p.read_text()[-2000:] for p in logs]
    base = f"{group}-{socket.gethostname()}"
    assert sorted(_chosen_id(p) for p in logs) == [base, f"{base}-1"]
    results = read_all(kafka_bootstrap, output_topics(kafka_bootstrap, new_topic))
    assert set(activity_ids(results)) == set(expected_results(stream))
    assert not any("fenced" in p.read_text() for p in logs)


def test_a_worker_killed_and_started_again_takes_its_transactional_id_back(
    kafka_bootstrap: str, new_topic: str, tmp_path: Path
) -> None:
    group = f"restart-in-place-{uuid.uuid4().hex[:8]}"
    produce(kafka_bootstrap, new_topic, make_stream(50, seed=8))
    killed = start_worker(
        kafka_bootstrap, new_topic, group, guarantee="exactly-once", idle=None, log_path=tmp_path / "a.log"
    )
    beside = start_worker(
        kafka_bootstrap, new_topic, group, guarantee="exactly-once", idle=4, log_path=tmp_path / "b.log"
    )
    try:
        first = _chosen_id(tmp_path / "a.log")
        assert _chosen_id(tmp_path / "b.log") != first
        killed.kill()  # SIGKILL: its slot is freed by the kernel, not by the worker
        killed.wait(timeout=10)
        again = start_worker(
            kafka_bootstrap, new_topic, group, guarantee="exactly-once", idle=4, log_path=tmp_path / "c.log"
        )
        assert _chosen_id(tmp_path / "c.log") == first
        assert again.wait(timeout=120) == 0
    finally:
        assert beside.wait(timeout=120) == 0
