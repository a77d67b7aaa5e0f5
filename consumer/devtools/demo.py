"""`activity-consumer demo` (what `make run` runs): a local Tansu broker, the webhook gateway, a
Voucherify stand-in that signs and POSTs corpus deliveries to it, and the worker, until Ctrl-C."""

from __future__ import annotations

import gc
import json
import os
import random
import secrets
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from consumer.config import GatewaySettings, Settings, environment
from consumer.devtools.corpus import EXAMPLES, SEED_FIXTURES
from consumer.devtools.webhooks import GatewayThread, WebhookClient, compact, delivery
from consumer.ingest.gateway import WEBHOOK_PATH
from consumer.ingest.records import customer_key
from consumer.kafka_io import produce_waiting
from consumer.pipeline.clients import client_config
from consumer.runtime.process import serve_worker
from consumer.runtime.worker import Worker

INPUT_TOPIC = "customer-activity"
DEMO_PROJECT = "proj_demo"
SENDERS = 4  # Voucherify's concurrent senders: each waits for its answer, as a webhook does


def corpus_dirs() -> list[Path]:
    """`ACTIVITY_DEMO_CORPUS` (folders of JSON activities, `os.pathsep`-separated), else
    Voucherify's examples shipped in the package, and the seed fixtures in a checkout."""
    given = environment().demo_corpus
    if given:
        return [Path(p) for p in given.split(os.pathsep)]
    return [EXAMPLES, SEED_FIXTURES]


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


@dataclass
class Posted:
    """What the demo's Voucherify sent, by the gateway's answer."""

    accepted: int = 0
    refused: int = 0  # 401: the deliveries signed with a wrong secret on purpose
    retried: int = 0  # 503 (or no answer): sent again, as Voucherify does
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int) -> None:
        with self.lock:
            if 200 <= status < 300:
                self.accepted += 1
            elif status == 401:
                self.refused += 1
            else:
                self.retried += 1


def send(
    port: int, secret: str, rate: float, stop: threading.Event, posted: Posted, seed: int, poison: Producer
) -> None:
    """Voucherify's side: the corpus mix as signed deliveries of both kinds at about `rate`/s.
    0.5% carry a wrong signature on purpose (401), and 0.5% of events are bytes no codec reads,
    written straight to the topic by a misbehaving producer (the worker dead-letters them);
    a 503 is sent again after its Retry-After."""
    rng = random.Random(seed)
    corpus = load_corpus()
    client = WebhookClient(port, secret)
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    try:
        while not stop.is_set():
            event = fresh(corpus[rng.randrange(len(corpus))], rng)
            if rng.random() < 0.005:
                produce_waiting(poison, INPUT_TOPIC, b"\x00garbage", customer_key(event))
                poison.poll(0)
            kind = "webhook" if rng.random() < 0.5 else "distribution"
            body = compact(delivery(event, kind, project=DEMO_PROJECT))
            forged = "0" * 64 if rng.random() < 0.005 else None
            status, retry_after = client.post(body, signature=forged)
            while status not in (200, 401) and not stop.is_set():
                posted.add(status)
                stop.wait(min(retry_after or 1.0, 2.0))
                status, retry_after = client.post(body)
            posted.add(status)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
    finally:
        client.close()


def _total(registry: Any, name: str) -> float:
    return float(sum(float(s.value) for m in registry.collect() for s in m.samples if s.name == name))


def summary(worker: Any, gateway: GatewayThread, posted: Posted, started: float, stop: threading.Event) -> None:
    reg = worker.registry
    last = (time.monotonic(), 0.0)
    while not stop.wait(2.0):
        consumed = _total(reg, "activity_consumer_events_consumed_total")
        now = time.monotonic()
        rate = (consumed - last[1]) / max(now - last[0], 1e-9)
        last = (now, consumed)
        line = (
            f"[{now - started:6.0f}s] webhooks {posted.accepted:>7} acked, {posted.refused} bad signature, "
            f"{posted.retried} retried; p99 ack {_ack_p99_ms(gateway):4.0f} ms | "
            f"consumed {consumed:>7.0f} ({rate:6.0f}/s)  "
            f"dead-lettered {_total(reg, 'activity_consumer_dead_letters_total'):>4.0f}  "
            f"redemptions {_total(reg, 'voucherify_redemptions_total'):>5.0f}  "
            f"points {_total(reg, 'voucherify_loyalty_points_total'):>8.0f}  "
            f"notifications {_total(reg, 'voucherify_notifications_total'):>5.0f}"
        )
        print(line, file=sys.stderr, flush=True)


def _ack_p99_ms(gateway: GatewayThread) -> float:
    """The gateway's ack latency p99 from its histogram (the upper bound of the bucket it falls in)."""
    buckets = [
        (float(s.labels["le"]), s.value)
        for m in gateway.server.registry.collect()
        for s in m.samples
        if s.name == "activity_gateway_ack_seconds_bucket"
    ]
    total = max((v for _, v in buckets), default=0.0)
    if not total:
        return 0.0
    return 1000 * next((le for le, v in sorted(buckets) if v >= 0.99 * total), 0.0)


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
    secret = secrets.token_hex(16)
    gateway = GatewayThread(
        GatewaySettings(
            bootstrap_servers=bootstrap, topic=INPUT_TOPIC, host="127.0.0.1", port=0, webhook_secrets=(secret,)
        ).validate()
    ).start()
    gateway.wait_ready()
    worker = Worker(settings)
    stop = threading.Event()
    posted = Posted()
    poison = Producer(client_config("producer", bootstrap, {}, defaults={"linger.ms": 20}))
    left = [0]

    def feed() -> None:
        # A signal (or --duration) stops the senders first; then the gateway answers what is in
        # flight and flushes, the worker stops, and the broker (in its own session: Ctrl-C never
        # reaches it) last.
        senders = [
            threading.Thread(
                target=send, args=(gateway.port, secret, rate / SENDERS, stop, posted, i, poison), daemon=True
            )
            for i in range(SENDERS)
        ]
        try:
            for t in senders:
                t.start()
            for t in senders:
                t.join()
        finally:
            left[0] = gateway.stop() + poison.flush(5)
            worker.stop()

    timer = threading.Timer(duration, stop.set) if duration else None
    if timer is not None:
        timer.start()
    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=summary, args=(worker, gateway, posted, time.monotonic(), stop), daemon=True),
    ]
    for t in threads:
        t.start()
    where = f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else "off"
    print(
        f"broker {bootstrap}; webhooks http://127.0.0.1:{gateway.port}{WEBHOOK_PATH} -> topic {INPUT_TOPIC}; "
        f"metrics {where} (gateway: http://127.0.0.1:{gateway.port}/metrics); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    code = serve_worker(worker, on_signal=stop.set)
    stop.set()
    if timer is not None:
        timer.cancel()
    for t in threads:
        t.join(timeout=30)
    print(
        f"stopped: {worker.processed} events processed, {left[0] + worker.unflushed} records left in producer "
        f"queues; {posted.accepted} webhooks acknowledged",
        file=sys.stderr,
    )
    return code
