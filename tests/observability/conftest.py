"""One observed worker run, shared by the exposition, probe and log tests.

The worker (a subprocess, `--log-format json`, ACTIVITY_LOG_LEVEL=debug, metrics on a free
port) consumes ~200 corpus events, unknown types and poison of every kind from a 4-partition
topic on the session's Tansu broker. While it runs, /readyz, /healthz and /metrics are polled;
once every record is accounted for and librdkafka has reported the lag of every partition,
a final scrape is kept, then the worker gets SIGTERM. The tests assert on what was recorded.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from consumer.devtools.embedded_broker import create_topics
from tests.observability.support import (
    Reply,
    Scrape,
    SentEvent,
    WorkerProc,
    corpus_stream,
    produce_recording,
    wait_for,
)

PARTITIONS = 4


@dataclass
class ObservedRun:
    topic: str
    events: list[SentEvent]
    worker: WorkerProc
    readiness: list[Reply] = field(default_factory=list)  # every /readyz reply, in order
    liveness: list[Reply] = field(default_factory=list)
    final: Scrape | None = None
    scraped_at: float = 0.0  # time.time() of the final scrape
    started_at: float = 0.0  # time.time() when the worker was started
    exit_code: int | None = None
    stop_seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""

    @property
    def scrape(self) -> Scrape:
        assert self.final is not None
        return self.final


def _probe(run: ObservedRun) -> bool:
    """One /readyz and one /healthz, recorded; False while nothing listens."""
    answered = False
    for path, into in (("/readyz", run.readiness), ("/healthz", run.liveness)):
        reply = run.worker.get(path)
        if reply is not None:
            into.append(reply)
            answered = True
    return answered


def _all_accounted(run: ObservedRun) -> Scrape | None:
    _probe(run)
    reply = run.worker.get("/metrics")
    if reply is None:
        return None
    s = Scrape(reply.body)
    n = len(run.events)
    consumed = s.total("activity_consumer_events_consumed_total")
    handled = s.total("activity_consumer_events_processed_total") + s.total("activity_consumer_dead_letters_total")
    return s if consumed == n and handled == n else None


def _lag_reported(run: ObservedRun) -> Scrape | None:
    _probe(run)
    s = run.worker.scrape()
    lag = s.select("activity_consumer_lag_messages", topic=run.topic)
    return s if len(lag) == PARTITIONS and all(x.value == 0 for x in lag) else None


@pytest.fixture(scope="session")
def observed_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedRun]:
    out_dir = tmp_path_factory.mktemp("observed-run")
    topic = f"obs-run.{uuid.uuid4().hex[:12]}"
    create_topics(kafka_bootstrap, {topic: PARTITIONS})
    events = corpus_stream(200, unknown=5, poison=3)
    produce_recording(kafka_bootstrap, topic, events)

    started_at = time.time()
    worker = WorkerProc.start(
        kafka_bootstrap,
        topic,
        f"obs-run-{uuid.uuid4().hex[:8]}",
        out_dir,
        idle=120,  # never idles out here: the run ends with SIGTERM
        env={"ACTIVITY_LOG_LEVEL": "debug"},
    )
    run = ObservedRun(topic, events, worker, started_at=started_at)
    try:
        wait_for(lambda: _probe(run), 20, "the worker's HTTP endpoint", 0.01)
        wait_for(lambda: _all_accounted(run), 60, "every record in the consumed/processed/dead-letter counters", 0.05)
        # librdkafka reports lag every statistics.interval.ms (5 s)
        run.final = wait_for(lambda: _lag_reported(run), 20, "consumer lag 0 on every partition", 0.1)
        run.scraped_at = time.time()
        _probe(run)
        run.exit_code, run.stop_seconds = worker.terminate(timeout=30)
        run.stdout, run.stderr = worker.stdout(), worker.stderr()
    except AssertionError as exc:
        worker.kill()
        raise AssertionError(f"{exc}\n{worker.tail()}") from exc
    try:
        yield run
    finally:
        worker.kill()


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("`promtool` is not on PATH: apt-get install -y prometheus (.ci/run does)")
    return path


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("`prometheus` is not on PATH: apt-get install -y prometheus (.ci/run does)")
    return path
