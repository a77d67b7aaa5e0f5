"""Latency near the broker's floor, measured without disturbing it.

    python -m bench.latency [--seconds 8] [--loads 0.1,0.5,0.8] [--sweep] [--smoke] [--json PATH]

On one Tansu broker (or `--bootstrap-servers`):
1. the worker's maximum: a backlog is written first, then the worker (`activity-consumer run`,
   defaults) reads it; the rate is events over the span of its results' CreateTimes;
2. at 10%, 50% and 80% of that maximum, the worker and the **floor** (`bench/floor.py`: consume,
   produce the raw bytes to the same fan-out, commit asynchronously) each get a fresh topic fed
   at that rate for `--seconds`;
3. with `--sweep`, the worker at 50% with one knob changed at a time
   (`--batch-max-wait-ms`, `--batch-size`, `--max-uncommitted-batches`).

Latency per event is its first result's CreateTime (set when the worker handed it to its
producer) minus the input's CreateTime (set by the load generator when it produced it).
Nothing reads the outputs while the load runs: every result is read after the process under
test has gone idle and exited, so the reader costs the broker nothing during the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from bench.stream import Event, build_stream
from consumer.config import Settings
from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE, STREAMS
from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics
from consumer.kafka_io import produce_waiting
from consumer.pipeline.codec import AvroCodec
from consumer.telemetry.kafka_logs import routed

REPO = Path(__file__).resolve().parents[1]
GROUP_ENV = {
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "KAFKA_GROUP_PROTOCOL": "classic",
}
IDLE_S = 6.0  # longer than the gap between the warm-up's check and the load
WARM = 200
# One knob at a time from the defaults, at half load.
SWEEP: dict[str, tuple[int, ...]] = {
    "--batch-max-wait-ms": (5, 10, 25, 50, 100),
    "--batch-size": (100, 500, 2000),
    "--max-uncommitted-batches": (2, 4, 8, 16),
}


@dataclass
class Figures:
    who: str
    flags: str
    offered: float
    events: int
    timed: int
    p50: float
    p90: float
    p99: float


def _pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def typed(stream: list[Event]) -> list[tuple[str, str | None, bytes, bytes]]:
    """(id, key, value, type) per event: the floor routes on the `activity-type` header."""
    codec = AvroCodec()
    kinds: dict[bytes, bytes] = {}
    out = []
    for activity_id, key, value in stream:
        body = value[10 + len(activity_id) + 1 :]  # the template's bytes after the spliced id
        kind = kinds.get(body)
        if kind is None:
            kind = kinds[body] = str(codec.decode(value)["type"]).encode()
        out.append((activity_id, key, value, kind))
    return out


def _producer(bootstrap: str) -> Producer:
    return Producer(routed({"bootstrap.servers": bootstrap, "linger.ms": 1, "enable.idempotence": True}))


def feed(bootstrap: str, topic: str, events: list[tuple[str, str | None, bytes, bytes]], rate: float | None) -> None:
    """Produce `events` at `rate` per second (None: as fast as possible); CreateTime = send time."""
    producer = _producer(bootstrap)
    started = time.perf_counter()
    for i, (activity_id, key, value, kind) in enumerate(events):
        if rate:
            ahead = started + i / rate - time.perf_counter()
            if ahead > 0.001:
                time.sleep(ahead)
        headers = [(H_ACTIVITY_ID, activity_id.encode()), (H_ACTIVITY_TYPE, kind)]
        produce_waiting(producer, topic, value, key, headers)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the load generator could not deliver its input")


def read_all(bootstrap: str, topics: list[str], partitions: int) -> dict[str, float]:
    """activity id -> its earliest result CreateTime (ms), reading every partition to its end."""
    reader = Consumer(
        routed(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"lat-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            }
        )
    )
    out: dict[str, float] = {}
    assigned = [TopicPartition(t, p, 0) for t in topics for p in range(partitions)]
    reader.assign(assigned)
    open_parts = {(tp.topic, tp.partition) for tp in assigned}
    deadline = time.monotonic() + 120
    try:
        while open_parts and time.monotonic() < deadline:
            for m in reader.consume(2000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        open_parts.discard((m.topic(), m.partition()))
                    continue
                activity_id = next((v for k, v in m.headers() or [] if k == H_ACTIVITY_ID), None)
                if activity_id is None:
                    continue
                a, ts = activity_id.decode(), float(m.timestamp()[1])
                out[a] = min(out.get(a, ts), ts)
    finally:
        reader.close()
    return out


def _start(who: str, bootstrap: str, topic: str, flags: list[str], metrics_port: int = 0) -> subprocess.Popen[str]:
    if who == "floor":
        # The worker's batch wait (its fetch wait follows it): the floor waits as long.
        default = str(Settings().batch_max_wait_ms)
        wait = flags[flags.index("--batch-max-wait-ms") + 1] if "--batch-max-wait-ms" in flags else default
        cmd = [sys.executable, "-m", "bench.floor", "--bootstrap", bootstrap, "--topic", topic, "--wait-ms", wait]
        cmd += ["--idle", str(IDLE_S)]
    else:
        cmd = [sys.executable, "-m", "consumer.cli", "run", "--bootstrap-servers", bootstrap, "--topics", topic]
        cmd += ["--group-id", f"lat-{uuid.uuid4().hex[:8]}", "--metrics-port", str(metrics_port)]
        cmd += ["--stop-when-idle", str(IDLE_S), "--log-level", "warning", *flags]
    env = {**os.environ, **GROUP_ENV, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_load(
    bootstrap: str,
    who: str,
    events: list[tuple[str, str | None, bytes, bytes]],
    rate: float | None,
    partitions: int,
    flags: list[str],
) -> tuple[Figures, dict[str, float], dict[str, float]]:
    """One process under test on a fresh topic: warm it up, feed `events` at `rate`, read after."""
    topic = f"lat.{who}.{uuid.uuid4().hex[:8]}"
    outputs = [f"{topic}.{s}" for s in STREAMS]
    # Outputs exist before the load, so neither contender creates topics inside the measured span.
    create_topics(bootstrap, {topic: partitions, **{t: partitions for t in [*outputs, f"{topic}.dlq"]}})
    warm, load = events[:WARM], events[WARM:]
    proc = _start(who, bootstrap, topic, flags)
    try:
        feed(bootstrap, topic, warm, None)
        # Wait for the warm-up's results: the group is joined and the pipeline turns. This reader
        # closes before the load starts.
        deadline = time.monotonic() + 90
        while len(read_all(bootstrap, outputs, partitions)) < len(warm):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{who} never processed its warm-up: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.5)
        feed(bootstrap, topic, load, rate)
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{who} exited {proc.returncode}: {err[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    results = read_all(bootstrap, outputs, partitions)
    sent = read_all(bootstrap, [topic], partitions)
    lat = [results[a] - sent[a] for a, _k, _v, _t in load if a in results and a in sent]
    fig = Figures(who, " ".join(flags), rate or 0.0, len(load), len(lat), *(_pct(lat, q) for q in (0.5, 0.9, 0.99)))
    return fig, results, sent


def max_rate(bootstrap: str, events: list[tuple[str, str | None, bytes, bytes]], partitions: int) -> float:
    """The worker's rate on a backlog: its results' CreateTime span (defaults, at-least-once)."""
    _, results, _ = run_load(bootstrap, "worker", events, None, partitions, [])
    times = sorted(results[a] for a, _k, _v, _t in events[WARM:] if a in results)
    span_s = (times[-1] - times[0]) / 1000 if len(times) > 1 else 0.0
    return (len(times) - 1) / span_s if span_s > 0 else float("nan")


def table(rows: list[Figures]) -> str:
    lines = [
        "| who | flags | offered/s | timed | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.who} | {r.flags or 'defaults'} | {r.offered:,.0f} | {r.timed}/{r.events} | "
            f"{r.p50:.0f} | {r.p90:.0f} | {r.p99:.0f} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[Figures]) -> list[str]:
    """The targets at half load: worker p99 <= 1.5x the floor's, p50 <= the floor's + 20 ms."""
    out = []
    half = [r for r in rows if r.flags == "" and r.who in ("worker", "floor")]
    by_rate: dict[float, dict[str, Figures]] = {}
    for r in half:
        by_rate.setdefault(r.offered, {})[r.who] = r
    for rate, pair in sorted(by_rate.items()):
        if {"worker", "floor"} <= pair.keys():
            w, f = pair["worker"], pair["floor"]
            out.append(
                f"at {rate:,.0f}/s: worker/floor p99 {w.p99 / f.p99:.2f}x (target <= 1.5x), "
                f"p50 worker - floor {w.p50 - f.p50:+.0f} ms (target <= +20 ms)"
            )
    return out


def measure(
    bootstrap: str, seconds: float, loads: Sequence[float], partitions: int, sweep: bool, backlog: int
) -> dict[str, object]:
    top = max_rate(bootstrap, typed(build_stream(WARM + backlog, seed=3)), partitions)
    rows: list[Figures] = []
    for i, share in enumerate(loads):
        rate = top * share
        stream = typed(build_stream(WARM + int(rate * seconds), seed=10 + i))
        for who in ("floor", "worker"):
            rows.append(run_load(bootstrap, who, stream, rate, partitions, [])[0])
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    if sweep:
        rate = top * 0.5
        stream = typed(build_stream(WARM + int(rate * seconds), seed=40))
        for flag, values in SWEEP.items():
            for v in values:
                rows.append(run_load(bootstrap, "worker", stream, rate, partitions, [flag, str(v)])[0])
                print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    return {"max_rate": top, "rows": [asdict(r) for r in rows], "verdicts": verdicts(rows), "table": table(rows)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0, help="length of each paced run")
    p.add_argument("--loads", default="0.1,0.5,0.8", help="shares of the worker's maximum")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--backlog", type=int, default=20_000, help="events for the maximum-rate run")
    p.add_argument("--sweep", action="store_true", help="also vary one knob at a time at half load")
    p.add_argument("--smoke", action="store_true", help="tiny runs: that it works, not how fast")
    p.add_argument("--bootstrap-servers", help="an existing cluster instead of a fresh Tansu")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    seconds, backlog = (1.0, 1000) if a.smoke else (a.seconds, a.backlog)
    loads = [float(x) for x in a.loads.split(",")]
    broker = None if a.bootstrap_servers else EmbeddedBroker().start()
    bootstrap = a.bootstrap_servers or broker.bootstrap_servers  # type: ignore[union-attr]
    try:
        out = measure(bootstrap, seconds, loads, a.partitions, a.sweep, backlog)
    finally:
        if broker is not None:
            broker.stop()
    print(f"worker maximum (defaults, backlog of {backlog}): {out['max_rate']:,.0f} events/s")
    print(out["table"])
    for line in out["verdicts"]:  # type: ignore[attr-defined]
        print(line)
    if a.json:
        a.json.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
