"""`activity-consumer demo` (what `make run` runs) stopped the way a terminal or an orchestrator
stops it: the signal goes to the whole process group (`killpg`), the broker's group included."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from consumer.devtools.embedded_broker import free_tcp_port
from tests.support.workers import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# What a client logs when the broker went before it did.
CONNECTION_ERRORS = re.compile(r"Connection refused|Connect to .* failed|BrokerTransportFailure|kafka_error|_TRANSPORT")
_REDEEMED = re.compile(r'^voucherify_redemptions_total\{[^}]*result="succeeded"[^}]*\} [1-9]', re.M)


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def _consumed(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("activity_consumer_events_consumed_total{")
    )


def _port_free(port: int) -> bool:
    """Bindable by the next server (which, like the worker's probes, sets SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _live_brokers_on(port: int) -> list[int]:
    """Pids of processes (zombies included) whose command line serves this broker port."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"tcp://127.0.0.1:{port}".encode() in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_demo_stops_cleanly_when_its_whole_process_group_is_signalled(sig: signal.Signals, tmp_path: Path) -> None:
    port = free_tcp_port()
    out = tmp_path / "demo.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "consumer.cli", "demo", "--metrics-port", str(port), "--rate", "300"],
            cwd=REPO,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, as a shell's job: killpg reaches it all
        )
    try:
        text = ""
        deadline = time.monotonic() + 90
        # Business metrics count committed work: wait for a commit that carried a redemption.
        while time.monotonic() < deadline and not (_consumed(text) >= 500 and _REDEEMED.search(text)):
            text = _metrics(port) or text
            assert proc.poll() is None, out.read_text()[-3000:]
            time.sleep(0.5)
        found = re.search(r"broker 127\.0\.0\.1:(\d+);", out.read_text())
        assert found, out.read_text()[-2000:]
        broker_port = int(found.group(1))
        assert _listening(broker_port)
        os.killpg(proc.pid, sig)  # what Ctrl-C (SIGINT) or `kill -TERM -PGID` sends
        sent_at = time.monotonic()
        code = proc.wait(timeout=60)
        took = time.monotonic() - sent_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = out.read_text()
    assert code == 0, output[-3000:]
    assert took < 10.0, f"{sig.name} to the group took {took:.1f}s to stop the demo"
    assert _consumed(text) >= 500 and _REDEEMED.search(text), text[-2000:]
    # The clients closed before the broker: no connection errors, no raw librdkafka lines.
    assert not CONNECTION_ERRORS.search(output), output[-3000:]
    assert not re.search(r"%\d\|", output), output[-3000:]
    # The generator's producer and the worker's: nothing left queued.
    stop_line = re.search(
        r"stopped: (\d+) events processed, (\d+) records left in producer queues; (\d+) webhooks acknowledged", output
    )
    assert stop_line, output[-2000:]
    processed, left, acknowledged = (int(g) for g in stop_line.groups())
    assert processed >= 500 and left == 0, stop_line.group(0)
    # The real path: every event the worker read came in as a signed webhook the gateway acknowledged.
    assert acknowledged >= processed, stop_line.group(0)
    assert "still in queue" not in output
    # Nothing outlives it: the broker is gone and both ports are free for the next `make run`.
    assert _live_brokers_on(broker_port) == []
    assert not _listening(broker_port) and not _listening(port)
    assert _port_free(broker_port) and _port_free(port)
