"""The webhook gateway's benchmark: acknowledged deliveries/s on Tansu, against a baseline.

    python -m bench.gateway [--deliveries 20000] [--concurrency 64] [--latency-seconds 5]

One Tansu broker. `activity-consumer ingest` runs in its own process (its CPU seconds and peak
RSS read from /proc); a load generator here POSTs signed deliveries of the corpus mix over
keep-alive connections (aiohttp client):
- max: a closed loop of `--concurrency` requests at a time, every one answered 200 only after
  the broker's ack; then acknowledged == records on the topic is checked;
- latency: an open loop at half that rate for `--latency-seconds`: p50 and p99 per request;
- baseline: the same aiohttp server (the gateway's app shape, same path, body read) answering
  200 without verifying or producing, under the same closed loop.
The load generator, the broker and the gateway share the machine's cores: say so with the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from consumer.devtools.corpus import EXAMPLES
from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics, free_tcp_port
from consumer.devtools.webhooks import compact, delivery
from consumer.ingest.gateway import WEBHOOK_PATH
from consumer.ingest.signature import SIGNATURE_HEADER, sign
from consumer.telemetry.kafka_logs import routed

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def deliveries(n: int) -> list[tuple[bytes, str]]:
    """n signed compact deliveries cycling through the corpus, each with its own event id."""
    corpus = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    out = []
    for i in range(n):
        activity = {**corpus[i % len(corpus)], "id": f"evcus_b{i:09d}{uuid.uuid4().hex[:6]}"}
        body = compact(delivery(activity, project="proj_bench"))
        out.append((body, sign(SECRET, body)))
    return out


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, sig: str) -> tuple[int, float]:
    started = time.perf_counter()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sig}
    async with session.post(url, data=body, headers=headers) as answer:
        await answer.read()
        return answer.status, time.perf_counter() - started


async def closed_loop(port: int, reqs: list[tuple[bytes, str]], concurrency: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    it = iter(reqs)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            for body, sig in it:
                status, took = await _one(session, url, body, sig)
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(took)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "latencies": latencies, "statuses": statuses}


async def open_loop(port: int, reqs: list[tuple[bytes, str]], rate: float, seconds: float) -> dict[str, Any]:
    """Requests sent on a fixed schedule (not waiting for answers), so slow answers show as latency."""
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    n = min(len(reqs), int(rate * seconds))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def send(body: bytes, sig: str) -> None:
            status, took = await _one(session, url, body, sig)
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(took)

        started = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(*reqs[i])))
        await asyncio.gather(*tasks)
    return {"latencies": latencies, "statuses": statuses, "offered": n / seconds}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else 0.0


def serve_baseline(port: int) -> None:
    """The same aiohttp server shape answering 200 at once: what HTTP alone costs."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"})

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post(WEBHOOK_PATH, ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _wait_http(port: int, path: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status in (200, 405):
                    return
        except Exception as exc:
            if "405" in str(exc):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answered on port {port}") from None
        time.sleep(0.1)


def ack_stats(port: int) -> tuple[float, float]:
    """(sum, count) of the gateway's ack-latency histogram."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("activity_gateway_ack_seconds_sum", "activity_gateway_ack_seconds_count")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("activity_gateway_ack_seconds_sum", 0.0), values.get("activity_gateway_ack_seconds_count", 0.0)


def _records_on(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    group = f"bench-{uuid.uuid4().hex[:6]}"
    c = Consumer(routed({"bootstrap.servers": bootstrap, "group.id": group, "enable.partition.eof": True}))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        remaining, n = set(parts), 0
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(m.partition())
                    continue
                n += 1
        return n
    finally:
        c.close()


def _row(name: str, n: int, rate: float, cpu: float | None, rss: float | None, lat: dict[str, Any]) -> str:
    cpu_s = f"{cpu / n * 1000:.3f}" if cpu is not None else "-"
    rss_s = f"{rss:.0f}" if rss is not None else "-"
    return (
        f"| {name:<48} | {n:>8} | {rate:>8,.0f} | {pct(lat['latencies'], 50):>7.1f} "
        f"| {pct(lat['latencies'], 99):>7.1f} | {cpu_s:>14} | {rss_s:>11} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0

    warm = deliveries(500)
    load = deliveries(args.deliveries)
    rows: list[str] = []
    with EmbeddedBroker() as broker:
        topic = f"bench-gateway.{uuid.uuid4().hex[:8]}"
        create_topics(broker.bootstrap_servers, {topic: args.partitions})
        port = free_tcp_port()
        exe = Path(sys.executable).parent / "activity-consumer"
        gateway = subprocess.Popen(
            [
                *(str(exe), "ingest", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic),
                *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--log-format", "json"),
            ],
            env={**os.environ, "VOUCHERIFY_WEBHOOK_SECRETS": SECRET},
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_http(port, "/readyz")
            asyncio.run(closed_loop(port, warm, 16))
            cpu0 = cpu_seconds(gateway.pid)
            peak = asyncio.run(closed_loop(port, load, args.concurrency))
            cpu = cpu_seconds(gateway.pid) - cpu0
            ok = peak["statuses"].get(200, 0)
            max_rate = len(load) / peak["elapsed"]
            rows.append(_row("gateway, acknowledged (closed loop)", len(load), max_rate, cpu, None, peak))
            half = deliveries(int(max_rate / 2 * args.latency_seconds) + 1)
            ack0 = ack_stats(port)
            lat = asyncio.run(open_loop(port, half, max_rate / 2, args.latency_seconds))
            ack1 = ack_stats(port)
            lat["ack_mean_ms"] = (ack1[0] - ack0[0]) / max(ack1[1] - ack0[1], 1) * 1000
            rss = peak_rss_mb(gateway.pid)
            rows[-1] = _row("gateway, acknowledged (closed loop)", len(load), max_rate, cpu, rss, peak)
            rows.append(
                _row(
                    f"gateway at half of max ({lat['offered']:,.0f}/s offered)",
                    len(half),
                    lat["offered"],
                    None,
                    None,
                    lat,
                )
            )
            acknowledged = ok + lat["statuses"].get(200, 0) + len(warm)
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
        on_topic = _records_on(broker.bootstrap_servers, topic)

    base_port = free_tcp_port()
    baseline = subprocess.Popen([sys.executable, "-m", "bench.gateway", "--serve-baseline", str(base_port)], cwd=REPO)
    try:
        _wait_http(base_port, WEBHOOK_PATH)
        asyncio.run(closed_loop(base_port, warm, 16))
        cpu0 = cpu_seconds(baseline.pid)
        base = asyncio.run(closed_loop(base_port, load, args.concurrency))
        base_cpu = cpu_seconds(baseline.pid) - cpu0
        base_rate = len(load) / base["elapsed"]
        rows.append(
            _row(
                "baseline: same aiohttp server, 200, no produce",
                len(load),
                base_rate,
                base_cpu,
                peak_rss_mb(baseline.pid),
                base,
            )
        )
    finally:
        baseline.terminate()
        baseline.wait(timeout=30)

    print(
        f"gateway bench {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, aiohttp {aiohttp.__version__}; concurrency {args.concurrency};"
        " the load generator, Tansu and the server share the cores"
    )
    print(f"| {'contender':<48} | requests |    req/s |  p50 ms |  p99 ms | CPU s / 1k req | peak RSS MB |")
    print(f"|{'-' * 50}|----------|----------|---------|---------|----------------|-------------|")
    for row in rows:
        print(row)
    per_core = max_rate / (cpu / peak["elapsed"]) if cpu else 0.0
    print(
        f"statuses: max {peak['statuses']}, half {lat['statuses']}, baseline {base['statuses']}; "
        f"acknowledged {acknowledged} == on the topic {on_topic}: {acknowledged == on_topic}"
    )
    print(
        f"ratios: gateway/baseline {max_rate / base_rate:.2f}x; acknowledged/s per gateway CPU-second {per_core:,.0f}; "
        f"p99 at half load {pct(lat['latencies'], 99):.1f} ms (broker ack mean {lat['ack_mean_ms']:.1f} ms)"
    )
    return 0 if acknowledged == on_topic and set(peak["statuses"]) == {200} else 1


if __name__ == "__main__":
    raise SystemExit(main())
