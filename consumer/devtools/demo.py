"""`activity-consumer demo` (what `make run` runs): a local Tansu broker, a realistic stream
built from the Voucherify corpus, and the worker with its metrics endpoint, until Ctrl-C."""

from __future__ import annotations

import gc
import json
import os
import random
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from consumer.config import Settings
from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE
from consumer.ingest.records import customer_key
from consumer.pipeline.codec import AvroCodec
from consumer.runtime.process import serve_worker
from consumer.runtime.worker import Worker
from consumer.telemetry.kafka_logs import routed

INPUT_TOPIC = "customer-activity"
_REPO = Path(__file__).resolve().parents[2]


def corpus_dirs() -> list[Path]:
    env = os.environ.get("ACTIVITY_DEMO_CORPUS")
    if env:
        return [Path(p) for p in env.split(os.pathsep)]
    return [
        _REPO.parent / "shared" / "voucherify" / "examples",
        _REPO / "tests" / "fixtures" / "seed",
    ]


def load_corpus() -> list[dict[str, Any]]:
    events = [json.loads(p.read_text()) for d in corpus_dirs() if d.is_dir() for p in sorted(d.glob("*.json"))]
    if not events:
        raise SystemExit(f"no demo corpus found in {', '.join(map(str, corpus_dirs()))}; set ACTIVITY_DEMO_CORPUS")
    return events


def fresh(template: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A corpus event with a new id and a created_at of now (the data is kept)."""
    event = dict(template)
    event["id"] = "evcus_" + uuid.uuid4().hex[:18]
    now = datetime.now(UTC)
    event["created_at"] = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    if rng.random() < 0.01:
        event["type"] = "customer.future.type"  # a type from tomorrow: forwarded, never dead-lettered
    return event


def stream(bootstrap: str, rate: float, stop: threading.Event, sent: list[int], unsent: list[int]) -> None:
    """Produce the corpus mix at about `rate` events/s; 0.5% are undecodable on purpose."""
    rng = random.Random(7)
    corpus = load_corpus()
    codec = AvroCodec()
    keyed = [(e, customer_key(e)) for e in corpus]
    producer = Producer(routed({"bootstrap.servers": bootstrap, "linger.ms": 20}))
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    while not stop.is_set():
        template, key = keyed[rng.randrange(len(keyed))]
        event = fresh(template, rng)
        headers = [(H_ACTIVITY_ID, event["id"].encode()), (H_ACTIVITY_TYPE, event["type"].encode())]
        value = codec.encode_json(event) if rng.random() >= 0.005 else b"\x00garbage"
        try:
            producer.produce(INPUT_TOPIC, value, key, headers=headers)
        except BufferError:
            producer.poll(0.1)
            continue
        sent[0] += 1
        producer.poll(0)
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
    unsent[0] = producer.flush(5)


def _total(registry: Any, name: str) -> float:
    return float(sum(float(s.value) for m in registry.collect() for s in m.samples if s.name == name))


def summary(worker: Any, sent: list[int], started: float, stop: threading.Event) -> None:
    reg = worker.registry
    last = (time.monotonic(), 0.0)
    while not stop.wait(2.0):
        consumed = _total(reg, "activity_consumer_events_consumed_total")
        now = time.monotonic()
        rate = (consumed - last[1]) / max(now - last[0], 1e-9)
        last = (now, consumed)
        line = (
            f"[{now - started:6.0f}s] sent {sent[0]:>7}  consumed {consumed:>7.0f} ({rate:6.0f}/s)  "
            f"dead-lettered {_total(reg, 'activity_consumer_dead_letters_total'):>4.0f}  "
            f"redemptions {_total(reg, 'voucherify_redemptions_total'):>5.0f}  "
            f"points {_total(reg, 'voucherify_loyalty_points_total'):>8.0f}  "
            f"notifications {_total(reg, 'voucherify_notifications_total'):>5.0f}"
        )
        print(line, file=sys.stderr, flush=True)


def run_demo(metrics_port: int = 9400, rate: float = 200.0, duration: float | None = None) -> int:
    from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics

    print("starting a local Tansu broker ...", file=sys.stderr, flush=True)
    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap_servers, {INPUT_TOPIC: 4})
        code = _stream_and_work(broker.bootstrap_servers, metrics_port, rate, duration)
        gc.collect()  # the worker's clients go before the broker, so they do not log its exit
        return code


def _stream_and_work(bootstrap: str, metrics_port: int, rate: float, duration: float | None) -> int:
    settings = Settings(
        bootstrap_servers=bootstrap,
        topics=(INPUT_TOPIC,),
        group_id="customer-activity-demo",
        metrics_port=metrics_port,
        kafka={"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"},
    ).validate()
    worker = Worker(settings)
    stop = threading.Event()
    sent, unsent = [0], [0]

    def feed() -> None:
        # A signal (or --duration) stops the generator first; once its producer has flushed,
        # the worker stops, and the broker (in its own session: Ctrl-C never reaches it) last.
        try:
            stream(bootstrap, rate, stop, sent, unsent)
        finally:
            worker.stop()

    timer = threading.Timer(duration, stop.set) if duration else None
    if timer is not None:
        timer.start()
    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=summary, args=(worker, sent, time.monotonic(), stop), daemon=True),
    ]
    for t in threads:
        t.start()
    where = f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else "off"
    print(f"broker {bootstrap}; topic {INPUT_TOPIC}; metrics {where}; Ctrl-C to stop", file=sys.stderr, flush=True)
    code = serve_worker(worker, on_signal=stop.set)
    stop.set()
    if timer is not None:
        timer.cancel()
    for t in threads:
        t.join(timeout=10)
    left = unsent[0] + worker.unflushed
    print(f"stopped: {worker.processed} events processed, {left} records left in producer queues", file=sys.stderr)
    return code
