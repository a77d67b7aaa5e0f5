"""Helpers for the observability tests: a worker subprocess with its HTTP endpoint, scrapes
parsed into samples, a corpus stream whose JSON payloads are kept, the personal data in it, and
one observed worker run (`observe_run`, behind tests/observability's `observed_run` fixture).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from consumer.contract import H_ACTIVITY_ID
from consumer.devtools.embedded_broker import create_topics, free_tcp_port
from consumer.ingest.records import customer_key
from consumer.kafka_io import produce_waiting
from consumer.pipeline.codec import AvroCodec
from consumer.telemetry.kafka_logs import routed
from tests.support.workers import make_stream, templates, worker_command, worker_env

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# waiting and HTTP


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    seconds: float


def http_get(port: int, path: str, timeout: float = 5.0) -> Reply:
    """GET http://127.0.0.1:port/path; raises OSError while nothing listens."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            body = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    return Reply(status, body, time.perf_counter() - started)


def try_get(port: int, path: str) -> Reply | None:
    try:
        return http_get(port, path)
    except OSError:  # connection refused: the server is not up (yet, or any more)
        return None


# --------------------------------------------------------------------------------------------
# scrapes


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """A parsed Prometheus text exposition."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples = [Sample(s.name, dict(s.labels), float(s.value)) for f in self.families for s in f.samples]

    def select(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        """The one sample with exactly these labels."""
        found = [s for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples in the scrape"
        return found[0].value

    def total(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.select(name, **labels))

    def by(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """{label value: sample value} over the samples of `name` (zero samples left out)."""
        out: dict[str, float] = {}
        for s in self.select(name, **labels):
            if s.value:
                out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
        return out

    def label_values(self) -> set[str]:
        return {v for s in self.samples for k, v in s.labels.items() if k != "le"}


# --------------------------------------------------------------------------------------------
# the stream


@dataclass
class SentEvent:
    activity_id: str
    key: str | None
    value: bytes
    payload: dict[str, Any] | None  # the JSON activity, None for bytes that are no activity
    poison: tuple[str, str] | None = None  # (reason, framing) the worker should report
    partition: int = -1
    offset: int = -1


def _poison_extras(base: list[dict[str, Any]]) -> list[SentEvent]:
    """Undecodable records beyond make_stream's, of every other reason, most full of personal data."""
    codec = AvroCodec()
    person = next(t for t in base if t["type"] == "customer.created")
    framed = codec.encode_json(person)
    key = customer_key(person)
    return [
        # JSON that is not an activity (an unknown envelope member): the whole customer, in clear text
        SentEvent(
            "evcus_pii_json0001",
            key,
            json.dumps({**person, "customer": person["data"]["customer"]}).encode(),
            None,
            ("json_not_activity", "json"),
        ),
        SentEvent("evcus_pii_trunc001", key, framed[: len(framed) // 2], None, ("truncated", "single-object")),
        SentEvent("evcus_pii_trail001", key, framed + b"\x00\x01", None, ("trailing_bytes", "single-object")),
        SentEvent("evcus_empty_000001", key, b"", None, ("empty", "unknown")),
    ]


def corpus_stream(n: int, *, unknown: int, poison: int, extra_poison: bool = True) -> list[SentEvent]:
    """make_stream(n, unknown, poison) with each record's JSON payload, plus other poison kinds."""
    base = templates()
    raw = make_stream(n, unknown=unknown, poison=poison)
    codec = AvroCodec()
    out: list[SentEvent] = []
    for i, (activity_id, key, value) in enumerate(raw):
        if i < n:
            payload: dict[str, Any] | None = {**base[i % len(base)], "id": activity_id}
        elif i < n + unknown:
            payload = {**base[(i - n) % len(base)], "id": activity_id, "type": "customer.teleported"}
        else:
            out.append(SentEvent(activity_id, key, value, None, ("unknown_schema_id", "confluent")))
            continue
        assert payload is not None
        decoded = codec.decode(value)  # make_stream's layout, checked: the payload is what was sent
        assert (decoded["id"], decoded["type"]) == (activity_id, payload["type"]), "make_stream changed its layout"
        out.append(SentEvent(activity_id, key, value, payload))
    return out + (_poison_extras(base) if extra_poison else [])


def produce_recording(bootstrap: str, topic: str, events: list[SentEvent]) -> None:
    """Produce with an `activity-id` header; record where each record landed."""
    producer = Producer(routed({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True}))
    errors: list[str] = []

    def report_for(event: SentEvent) -> Callable[[Any, Any], None]:
        def report(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                event.partition, event.offset = msg.partition(), msg.offset()

        return report

    for e in events:
        produce_waiting(producer, topic, e.value, e.key, [(H_ACTIVITY_ID, e.activity_id.encode())], report_for(e))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]
    assert all(e.offset >= 0 for e in events)


# --------------------------------------------------------------------------------------------
# personal data in the payloads


_PERSON_OBJECTS = frozenset({"customer", "holder", "referrer", "referee", "referred_customer"})


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, (*path, str(k)))
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, (*path, "[]"))
    else:
        yield path, node


def personal_values(payloads: list[dict[str, Any]]) -> set[str]:
    """Emails and phones anywhere, names of people, and the strings found only under `metadata`."""
    leaves = [(path, v) for p in payloads for path, v in walk(p) if isinstance(v, str) and v]
    # a metadata value that the corpus also carries in a typed field (a distribution id) is not
    # free-form content: only values found under `metadata` alone count
    typed = {v for path, v in leaves if "metadata" not in path}

    def personal(path: tuple[str, ...], v: str) -> bool:
        if path[-1] in ("email", "phone"):
            return True
        if path[-1] == "name":
            return len(path) >= 2 and path[-2] in _PERSON_OBJECTS
        return "metadata" in path and v not in typed

    return {v for path, v in leaves if personal(path, v)}


def campaign_names(payloads: list[dict[str, Any]]) -> set[str]:
    return {v for p in payloads for path, v in walk(p) if path[-2:] == ("campaign", "name") and isinstance(v, str)}


# --------------------------------------------------------------------------------------------
# the worker as a subprocess


@dataclass
class WorkerProc:
    """`python -m consumer.cli run ...`, its stdout and stderr kept apart in files."""

    args: list[str]
    env: dict[str, str]
    out_dir: Path
    name: str = "worker"
    port: int = field(default_factory=free_tcp_port)
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls,
        bootstrap: str,
        topic: str,
        group: str,
        out_dir: Path,
        *,
        name: str = "worker",
        idle: float | None = None,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
        metrics: bool = True,
    ) -> WorkerProc:
        port = free_tcp_port() if metrics else 0
        args = worker_command(bootstrap, topic, group, idle=idle, metrics_port=port, extra=extra)
        full_env = worker_env(env)
        w = cls(args, full_env, out_dir, name, port)
        w.proc = subprocess.Popen(
            args,
            cwd=REPO,
            env=full_env,
            stdout=w.stdout_path.open("wb"),
            stderr=w.stderr_path.open("wb"),
        )
        return w

    @property
    def stdout_path(self) -> Path:
        return self.out_dir / f"{self.name}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.out_dir / f"{self.name}.stderr"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def tail(self, n: int = 3000) -> str:
        return f"--- stdout\n{self.stdout()[-n:]}\n--- stderr\n{self.stderr()[-n:]}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> Reply | None:
        assert self.alive(), f"{self.name} exited with {self.proc and self.proc.returncode}\n{self.tail()}"
        return try_get(self.port, path)

    def scrape(self) -> Scrape:
        reply = self.get("/metrics")
        assert reply is not None and reply.status == 200, reply
        return Scrape(reply.body)

    def wait_http(self, timeout: float = 20.0) -> Reply:
        return wait_for(lambda: self.get("/healthz"), timeout, f"{self.name}'s HTTP endpoint", 0.02)

    def terminate(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until it exited)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s\n{self.tail()}") from None
        return code, time.monotonic() - started

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} still running after {timeout}s\n{self.tail()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# --------------------------------------------------------------------------------------------
# one observed run (the `observed_run` fixture of tests/observability)

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


@contextlib.contextmanager
def observe_run(kafka_bootstrap: str, out_dir: Path) -> Iterator[ObservedRun]:
    """One observed worker run, shared by the exposition, probe and log tests.

    The worker (a subprocess, `--log-format json`, ACTIVITY_LOG_LEVEL=debug, metrics on a free
    port) consumes ~200 corpus events, unknown types and poison of every kind from a 4-partition
    topic on the session's Tansu broker. While it runs, /readyz, /healthz and /metrics are polled;
    once every record is accounted for and librdkafka has reported the lag of every partition,
    a final scrape is kept, then the worker gets SIGTERM. The tests assert on what was recorded.
    """
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
