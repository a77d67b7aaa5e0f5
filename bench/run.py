"""`make bench`: the whole story in one table, from one run on one Tansu broker.

    python -m bench.run [--events 30000] [--partitions 4] [--latency-seconds 8] [--sweep] [--smoke]

One broker; the input topic is written once with N events of the corpus mix (bench/stream.py).
Each contender then runs in its own process (bench/contenders.py) and its own consumer group,
one at a time, so that its CPU seconds and peak RSS are its own. After them:
- latency (bench/latency.py): the worker against the floor, a minimal forwarder, each at 10, 50
  and 80% of the worker's maximum, results read only after each run (`--sweep`: one knob at a time);
- `activity-consumer run --processes 1` and `2` on the input topic, from the outside (committed
  offsets, /proc), the way it is deployed;
- the webhook gateway (bench/gateway.py, on a broker of its own): acknowledged deliveries/s,
  request p50/p99 at half that rate, CPU per 1k and peak RSS, against the same aiohttp server
  answering 200 without producing.
Quix Streams rows run where `quixstreams` imports: this interpreter, else `.venv-bench`
(Quix pins confluent-kafka < 2.13, so `make bench` builds that venv and runs everything from it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench import latency
from bench.stream import build_stream, produce
from consumer.contract import STREAMS
from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics
from consumer.pipeline.codec.engines import resolve
from consumer.telemetry import logs

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = REPO / ".venv-bench"
INPUT = "customer-activity"

# (key, label): the table's rows, in order
ROWS = [
    ("raw", "raw consume (consume(500), no decode)"),
    ("decode-fastavro", "decode ceiling, fastavro (consume + decode)"),
    ("decode-cavro", "decode ceiling, cavro (consume + decode)"),
    ("plain", "plain loop (fastavro; flush + commit per batch)"),
    ("worker-alo-cavro", "our worker, at-least-once, cavro"),
    ("worker-eos-cavro", "our worker, exactly-once, cavro"),
    ("worker-alo-fastavro", "our worker, at-least-once, fastavro"),
    ("worker-eos-fastavro", "our worker, exactly-once, fastavro"),
    ("quix-native", "Quix Streams, its own Avro (de)serializers"),
    ("quix-ours", "Quix Streams, our codec"),
]
QUIX_ROWS = {"quix-native", "quix-ours"}
LOADS = (0.1, 0.5, 0.8)  # latency runs, as shares of the worker's maximum


@dataclass
class Row:
    key: str
    label: str
    events: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu_seconds / self.events * 1000 if self.events else float("nan")


def _has_quix(python: str) -> bool:
    return subprocess.run([python, "-c", "import quixstreams"], capture_output=True, check=False).returncode == 0


def quix_python() -> str | None:
    if _has_quix(sys.executable):
        return sys.executable
    candidate = BENCH_VENV / "bin" / "python"
    return str(candidate) if candidate.exists() and _has_quix(str(candidate)) else None


def contender(python: str, name: str, bootstrap: str, topic: str, events: int, timeout: float) -> dict[str, Any]:
    cmd = [python, "-m", "bench.contenders", name, "--bootstrap", bootstrap, "--topic", topic]
    cmd += ["--events", str(events), "--prefix", f"bench.{name}.", "--streams", ",".join(STREAMS)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


# -- --processes N from the outside ---------------------------------------------------------------
def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        found += frontier
    return found


def _cpu_and_hwm(pids: list[int]) -> tuple[float, dict[int, float]]:
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, hwm = 0.0, {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / ticks
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm[pid] = int(line.split()[1]) / 1024
        except (OSError, IndexError, ValueError):
            continue
    return cpu, hwm


def processes_run(python: str, bootstrap: str, partitions: int, n: int, k: int, timeout: float) -> Row:
    group = f"bench-processes{k}-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "ACTIVITY_LOG_LEVEL": "warning",
    }
    cmd = [python, "-m", "consumer.cli", "run", "--topics", INPUT, "--group-id", group, "--processes", str(k)]
    cmd += ["--metrics-port", "0", "--stop-when-idle", "3", "--output-prefix", f"bench.processes{k}."]
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    tps = [TopicPartition(INPUT, p) for p in range(partitions)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = done = None
    cpu0 = cpu1 = 0.0
    peak: dict[int, float] = {}
    pids: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while done is None and time.monotonic() < deadline:
            exited = proc.poll() is not None  # then one last look at the commits
            committed = sum(max(tp.offset, 0) for tp in watcher.committed(tps, timeout=5))
            if not pids or exited or len(peak) < k + 1:  # scanning /proc costs CPU: only until all are up
                pids = _descendants(proc.pid)
            cpu, hwm = _cpu_and_hwm(pids)
            for pid, mb in hwm.items():
                peak[pid] = max(peak.get(pid, 0.0), mb)
            now = time.perf_counter()
            if first is None and committed > 0:
                first, cpu0, first_committed = now, cpu, committed
            if committed >= n:
                done, cpu1 = now, cpu
            if exited:
                break
            time.sleep(0.2)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        watcher.close()
        if proc.poll() is None:
            proc.kill()
    if first is None or done is None:
        stderr = proc.stderr.read()[-2000:] if proc.stderr else ""
        raise RuntimeError(f"--processes {k} did not commit all {n} events (exit {proc.returncode}): {stderr}")
    # The clock starts at the first commit: the events of that first batch are left out.
    events = n - first_committed
    if events <= 0:
        raise RuntimeError(f"--processes {k}: every event was committed at once; give more --events to time it")
    workers = [mb for pid, mb in peak.items() if pid != proc.pid] or list(peak.values())
    return Row(
        f"processes-{k}", f"activity-consumer run --processes {k}", events, done - first, cpu1 - cpu0, max(workers)
    )


# -- the table -------------------------------------------------------------------------------------
def _versions(python: str) -> str:
    code = (
        "import importlib.metadata as m, platform\n"
        "v = [platform.python_version()]\n"
        "for p in ('confluent-kafka', 'fastavro', 'cavro', 'quixstreams'):\n"
        "    try: v.append(p + ' ' + m.version(p))\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(', '.join(v))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False).stdout.strip()
    return f"Python {out}"


def table(rows: dict[str, Row], extra: list[str]) -> str:
    head = f"| {'contender':<46} | {'events':>7} | {'events/s':>9} | {'CPU s / 1k ev':>13} | {'peak RSS MB':>11} |"
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows.values():
        label = r.label + (f" ({r.note})" if r.note else "")
        lines.append(
            f"| {label:<46} | {r.events:>7} | {r.rate:>9,.0f} | {r.cpu_per_1k:>13.3f} | {r.peak_rss_mb:>11.0f} |"
        )
    return "\n".join([*lines, "", *extra])


def ratio(rows: dict[str, Row], a: str, b: str) -> str:
    if a in rows and b in rows:
        return f"{rows[a].rate / rows[b].rate:.2f}x"
    return "n/a (not run)"


# (numerator row, denominator row, least ratio): issue 18's throughput targets, checked in the same run
THROUGHPUT_TARGETS = (
    ("worker-alo-{engine}", "quix-native", 3.0),
    ("worker-alo-fastavro", "quix-native", 2.0),
    ("worker-alo-{engine}", "decode-{engine}", 0.5),
)
RSS_BOUND_MB = 150


def targets(rows: dict[str, Row], worker: str) -> list[str]:
    """One line per target: the measured ratio, the target, met or not."""
    engine = worker.rsplit("-", 1)[-1]
    out = []
    for a, b, least in THROUGHPUT_TARGETS:
        a, b = a.format(engine=engine), b.format(engine=engine)
        if a in rows and b in rows:
            got = rows[a].rate / rows[b].rate
            out.append(f"Target {a}/{b} >= {least:g}x: {got:.2f}x, {'met' if got >= least else 'not met'}.")
        else:
            out.append(f"Target {a}/{b} >= {least:g}x: not measured (a row was skipped).")
    heavy = [f"{r.key} {r.peak_rss_mb:.0f} MB" for r in rows.values() if r.peak_rss_mb > RSS_BOUND_MB]
    verdict = "not met: " + ", ".join(heavy) if heavy else "met"
    out.append(f"Target peak RSS <= {RSS_BOUND_MB} MB in every row: {verdict}.")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=None, help="input events (default 30000; 300 with --smoke)")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--latency-seconds", type=float, default=None, help="paced run length (default 8; 1 with --smoke)")
    p.add_argument("--sweep", action="store_true", help="latency: also vary one knob at a time at half load")
    p.add_argument("--smoke", action="store_true", help="a tiny run that checks the benchmark works, not speeds")
    p.add_argument("--json", type=Path, help="also write the rows and figures here")
    a = p.parse_args(argv)
    n = a.events or (300 if a.smoke else 30_000)
    lat_seconds = a.latency_seconds or (1.0 if a.smoke else 8.0)
    timeout = 120 if a.smoke else 600
    logs.configure("json", "warning", stream=sys.stderr)
    t0 = time.perf_counter()
    python, qpython = sys.executable, quix_python()
    default_engine = resolve("auto")
    stream = build_stream(n)
    rows: dict[str, Row] = {}
    skipped: list[str] = []
    extra: list[str] = []
    lat: dict[str, object] = {}
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, {INPUT: a.partitions})
        produce(bootstrap, INPUT, stream)
        del stream
        for key, label in ROWS:
            runner = qpython if key in QUIX_ROWS else python
            if runner is None:
                skipped.append(f"{key} (quixstreams is not installed here nor in .venv-bench: `make bench` builds it)")
                continue
            if key.endswith("-cavro") and default_engine != "cavro":
                skipped.append(f"{key} (cavro is not installed)")
                continue
            if key in QUIX_ROWS or key == "plain":
                create_topics(bootstrap, {f"bench.{key}.{s}": a.partitions for s in STREAMS})
            m = contender(runner, key, bootstrap, INPUT, n, timeout)
            rows[key] = Row(key, label, m["events"], m["seconds"], m["cpu_seconds"], m["peak_rss_mb"])
            print(f"{key}: {rows[key].rate:,.0f} events/s", file=sys.stderr, flush=True)

        # Latency: the worker against the floor at 10/50/80% of its maximum (bench/latency.py).
        loads, backlog = ((0.5,), 1000) if a.smoke else (LOADS, 20_000)
        lat = latency.measure(bootstrap, lat_seconds, loads, a.partitions, a.sweep, backlog)
        extra.append(
            f"Latency, input CreateTime -> first result CreateTime, read after each run; worker maximum "
            f"{lat['max_rate']:,.0f} events/s (defaults, backlog), {lat_seconds:g} s per paced run:\n\n"
            f"{lat['table']}\n\n" + "\n".join(f"Latency target {v}." for v in lat["verdicts"])  # type: ignore[attr-defined]
        )
        for k in (1, 2):
            try:
                rows[f"processes-{k}"] = processes_run(python, bootstrap, a.partitions, n, k, timeout)
            except RuntimeError as exc:  # reported under the table, the other rows still stand
                skipped.append(f"processes-{k} ({exc})")
                continue
            print(f"processes-{k}: {rows[f'processes-{k}'].rate:,.0f} events/s", file=sys.stderr, flush=True)

    # The webhook gateway's rows (bench/gateway.py starts its own broker: it loads that one alone).
    deliveries, lat_s = ("300", "1") if a.smoke else ("20000", "5")
    cmd = [python, "-m", "bench.gateway", "--deliveries", deliveries, "--latency-seconds", lat_s]
    gw = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    if gw.returncode == 0:
        extra.append("Webhook gateway (bench/gateway.py):\n\n" + gw.stdout.strip())
    else:
        skipped.append(f"gateway (exit {gw.returncode}: {(gw.stdout + gw.stderr)[-1500:]})")

    w = f"worker-alo-{default_engine}"
    extra += [
        f"Ratios (events/s): worker/Quix-native {ratio(rows, w, 'quix-native')}, "
        f"worker/decode-ceiling {ratio(rows, w, f'decode-{default_engine}')}, "
        f"cavro/fastavro worker {ratio(rows, 'worker-alo-cavro', 'worker-alo-fastavro')}, "
        f"cavro/fastavro decode {ratio(rows, 'decode-cavro', 'decode-fastavro')}, "
        f"exactly-once/at-least-once {ratio(rows, f'worker-eos-{default_engine}', w)}, "
        f"--processes 2/1 {ratio(rows, 'processes-2', 'processes-1')}.",
    ]
    extra += targets(rows, w)
    extra += [f"Skipped: {s}" for s in skipped]
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    print(
        f"\n{when}, {os.cpu_count()} cores ({platform.machine()}), one Tansu broker, {n} events of the corpus mix, "
        f"{a.partitions} partitions; {_versions(python)}"
        + (f"; Quix from {qpython}" if qpython and qpython != python else "")
        + ". One contender at a time, each in its own process; the clock runs from the first input in hand to "
        "all results acknowledged and offsets committed. CPU = user+system of the whole process over that span.\n"
    )
    print(table(rows, extra))
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    if a.json:
        a.json.write_text(
            json.dumps(
                {"rows": {k: vars(r) for k, r in rows.items()}, "skipped": skipped, "notes": extra, "latency": lat}
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
