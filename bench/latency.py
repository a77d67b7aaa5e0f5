"""End-to-end latency at a fixed offered load, on Tansu: input CreateTime to result.

    python -m bench.latency [--rate 3000] [--seconds 10] [--repo PATH] [-- extra worker flags]

The worker runs as `activity-consumer run` in a subprocess (from `--repo`, so an older
checkout can be measured the same way). Events are produced at `--rate` per second, each
stamped with its send time (its CreateTime). Two figures per event, over all its results:
- `result`: the result record's CreateTime, set when the worker handed it to its producer;
- `visible`: when this benchmark's read_committed reader received it, which is after the
  broker acknowledged it (an upper bound on "result acked").
Knobs are the worker's own settings (`--batch-max-wait-ms`, `--max-uncommitted-batches`, ...).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.stream import build_stream
from consumer.contract import STREAMS
from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics
from consumer.telemetry.kafka_logs import routed

REPO = Path(__file__).resolve().parents[1]
GROUP_ENV = {
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "KAFKA_GROUP_PROTOCOL": "classic",
}


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _start_worker(bootstrap: str, topic: str, repo: Path, extra: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **GROUP_ENV, "PYTHONPATH": str(repo), "ACTIVITY_AVRO_DIR": str(repo / "avro")}
    args = [sys.executable, "-m", "consumer.cli", "run", "--bootstrap-servers", bootstrap, "--topics", topic]
    args += ["--group-id", f"lat-{uuid.uuid4().hex[:8]}", "--metrics-port", "0", "--log-format", "json", *extra]
    return subprocess.Popen(args, cwd=repo, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def measure(
    bootstrap: str, rate: int, seconds: float, partitions: int, repo: Path, extra: list[str]
) -> dict[str, float]:
    topic = f"latency.{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: partitions})
    warm, stream = build_stream(200, seed=7), build_stream(int(rate * seconds), seed=8)
    log = Path(f"/tmp/{topic}.log")
    worker = _start_worker(bootstrap, topic, repo, extra, log)
    sent: dict[str, float] = {}
    results: dict[str, float] = {}
    visible: dict[str, float] = {}
    producer = Producer(routed({"bootstrap.servers": bootstrap, "linger.ms": 0}))
    reader = Consumer(
        routed(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
                "enable.auto.commit": False,
            }
        )
    )

    def send(events: list[tuple[str, str | None, bytes]], per_second: float | None) -> None:
        t0 = time.time()
        for i, (activity_id, key, value) in enumerate(events):
            if per_second:
                ahead = t0 + i / per_second - time.time()
                if ahead > 0.001:
                    time.sleep(ahead)
            now_ms = time.time() * 1000
            sent[activity_id] = now_ms
            producer.produce(topic, value, key, headers=[("activity-id", activity_id.encode())], timestamp=int(now_ms))
            producer.poll(0)
        producer.flush(30)

    def read_until(ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= visible.keys() and time.monotonic() < deadline:
            for m in reader.consume(1000, 0.05):
                if m.error() is not None:
                    continue
                got = time.time() * 1000
                activity_id = dict(m.headers() or []).get("activity-id")
                if activity_id is None:
                    continue
                a = activity_id.decode()
                results[a] = max(results.get(a, 0.0), float(m.timestamp()[1]))
                visible[a] = max(visible.get(a, 0.0), got)

    try:
        send(warm, None)  # the worker joins the group and creates its output topics
        outputs = [f"{topic}.{s}" for s in STREAMS] + [f"{topic}.dlq"]
        deadline = time.monotonic() + 90
        while True:
            names = reader.list_topics(timeout=10).topics
            if all(t in names for t in outputs):
                break
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"the worker never created its outputs: see {log}")
            time.sleep(0.5)
        reader.assign([TopicPartition(t, p, 0) for t in outputs for p in range(partitions)])
        read_until({a for a, _, _ in warm}, 90)
        sending = threading.Thread(target=send, args=(stream, rate))
        started = time.time()
        sending.start()
        ids = {a for a, _, _ in stream}
        read_until(ids, seconds + 60)
        sending.join()
        took = max(visible[a] for a in ids if a in visible) / 1000 - started
    finally:
        worker.terminate()
        worker.wait(30)
        reader.close()
    lat_result = [results[a] - sent[a] for a in ids if a in results]
    lat_visible = [visible[a] - sent[a] for a in ids if a in visible]
    return {
        "events": len(ids),
        "seen": len(lat_visible),
        "rate": len(lat_visible) / took,
        **{f"result_p{int(q * 100)}": _pct(lat_result, q) for q in (0.5, 0.9, 0.99)},
        **{f"visible_p{int(q * 100)}": _pct(lat_visible, q) for q in (0.5, 0.9, 0.99)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=3000, help="offered load, events/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose worker is measured")
    parser.add_argument("--bootstrap-servers", help="an existing cluster instead of a fresh Tansu")
    parser.add_argument("worker_args", nargs="*", help="extra flags for `activity-consumer run` (after --)")
    args = parser.parse_args(argv)
    broker = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        broker = EmbeddedBroker()
        broker.start()
        bootstrap = broker.bootstrap_servers
    try:
        r = measure(bootstrap, args.rate, args.seconds, args.partitions, args.repo, args.worker_args)
    finally:
        if broker is not None:
            broker.stop()
    print(
        f"rate {args.rate}/s x {args.seconds:g}s, {args.partitions} partitions, worker {' '.join(args.worker_args)}: "
        f"{r['seen']:.0f}/{r['events']:.0f} seen at {r['rate']:.0f}/s | "
        f"result p50 {r['result_p50']:.1f} p90 {r['result_p90']:.1f} p99 {r['result_p99']:.1f} ms | "
        f"visible p50 {r['visible_p50']:.1f} p90 {r['visible_p90']:.1f} p99 {r['visible_p99']:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
