"""Issue 10, item 8: TLS and SASL/SCRAM through `KAFKA_*` pass-through, against Tansu; credentials
in no log line and no metric; `--metrics-host` binds the probe and metrics server to one interface.

Each test runs its own Tansu (its own flags), not the session broker.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumer.contract import STREAMS
from consumer.devtools.embedded_broker import find_tansu_binary, free_tcp_port
from consumer.pipeline.topics import create_topics
from tests.support.fault_matrix import MatrixRecorder, MissingBehaviour, expectations, tally
from tests.support.tansu_faults import fast_stream, produce_all
from tests.support.tls import Pki, TlsTerminator, make_pki
from tests.support.workers import read_all, start_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass
class Tansu:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def tansu(tmp_path: Path, *flags: str, advertised_port: int | None = None) -> Iterator[Tansu]:
    """A Tansu broker with `flags` on a free port (advertising `advertised_port` if given). The
    process may have exited (bad flags): the caller looks at `proc` and `output`."""
    port = free_tcp_port()
    log = tmp_path / f"tansu-{port}.log"
    listener = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                find_tansu_binary(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                advertised,
                *flags,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.02)
        yield Tansu(proc, port, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _wait_for_line(log: Path, needles: tuple[str, ...], timeout: float, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if any(n in line for n in needles):
                return line
        if proc.poll() is not None and time.monotonic() > deadline - timeout + 1:
            break
        time.sleep(0.1)
    for line in log.read_text(errors="replace").splitlines():
        if any(n in line for n in needles):
            return line
    raise AssertionError(f"no line with {needles} in:\n{log.read_text(errors='replace')[-3000:]}")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# -- TLS --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, str]]:
    """(bootstrap, how): Tansu's own TLS listener if this Tansu accepts `--cert` with `--key`,
    else a plain Tansu behind `TlsTerminator` (see tests/support/tls.py)."""
    with tansu(tmp_path, "--cert", str(pki.cert), "--key", str(pki.key)) as native:
        if native.proc.poll() is None:
            yield f"127.0.0.1:{native.port}", "tansu --cert/--key"
            return
        assert "cannot be used with" in native.output, native.output  # the known Tansu 0.6.0 clap conflict
    front = free_tcp_port()
    with tansu(tmp_path, advertised_port=front) as plain, TlsTerminator(pki, ("127.0.0.1", plain.port), front):
        assert plain.proc.poll() is None, plain.output
        yield f"127.0.0.1:{front}", "TLS terminator in front of tansu (Tansu 0.6.0 refuses --cert with --key)"


def test_tls_worker_connects_through_ssl_pass_through_and_a_wrong_ca_is_refused(
    tmp_path: Path, fault_matrix: MatrixRecorder
) -> None:
    pki = make_pki(tmp_path)
    ssl_client = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
    with tls_broker(tmp_path, pki) as (bootstrap, how):
        topic, group = f"tls.{uuid.uuid4().hex[:8]}", f"tls-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, {topic: 2}, kafka=ssl_client)
        stream = fast_stream(300, 31)
        produce_all(bootstrap, topic, stream, **ssl_client)

        log = tmp_path / "worker.log"
        env = {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(pki.ca)}
        proc = start_worker(bootstrap, topic, group, idle=4, env=env, log_path=log)
        assert proc.wait(timeout=90) == 0, log.read_text(errors="replace")[-3000:]
        outputs = [f"{topic}.{s}" for s in (*STREAMS, "dlq")]
        t = tally(expectations(stream), read_all(bootstrap, outputs, config=ssl_client))
        fault_matrix.record("tansu: TLS (SSL pass-through)", "at-least-once", t, endpoint=how)
        assert t.forwarded == t.sent and t.lost == 0, t

        # The same worker trusting another CA: refused at the handshake, with a clear error.
        wrong = tmp_path / "wrong-ca.log"
        env = {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(pki.other_ca)}
        proc = start_worker(bootstrap, topic, f"{group}-wrong", idle=None, env=env, log_path=wrong)
        try:
            line = _wait_for_line(wrong, ("certificate verify failed",), 30, proc)
            assert "SSL handshake failed" in line or "ssl" in line.lower(), line
            assert "partitions_assigned" not in wrong.read_text(errors="replace")
        finally:
            stop_worker(proc)
        print(f"\nSECURITY TLS via {how}: wrong CA -> {line[:300]}")


# -- SASL/SCRAM -------------------------------------------------------------------------------------

SASL_PASSWORD = f"pw-{uuid.uuid4().hex}"
SASL_USER = "svc-fault-matrix"


def _sasl_env(password: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": SASL_USER,
        "KAFKA_SASL_PASSWORD": password,
    }


def test_sasl_scram_bad_credentials_give_a_clear_error_and_a_non_zero_exit_and_never_show_the_password(
    tmp_path: Path,
) -> None:
    with tansu(tmp_path, "--authentication") as broker:
        assert broker.proc.poll() is None, broker.output
        bootstrap = f"127.0.0.1:{broker.port}"
        metrics_port = free_tcp_port()
        log = tmp_path / "worker.log"
        proc = start_worker(
            bootstrap,
            "secured.activities",
            f"sasl-{uuid.uuid4().hex[:8]}",
            idle=None,
            env=_sasl_env(SASL_PASSWORD),
            extra=["--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1"],
            log_path=log,
        )
        try:
            line = _wait_for_line(log, ("SASL authentication error", "Authentication failed"), 30, proc)
            assert SASL_PASSWORD not in line
            scraped = ""
            if proc.poll() is None:
                status, scraped = _get(f"http://127.0.0.1:{metrics_port}/metrics")
                assert status == 200 and "activity_consumer" in scraped
                assert SASL_PASSWORD not in scraped and SASL_PASSWORD[3:] not in scraped
                assert _get(f"http://127.0.0.1:{metrics_port}/readyz")[0] != 200  # never connected
            try:
                code: int | None = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = None
        finally:
            stop_worker(proc)
        text = log.read_text(errors="replace")
        assert SASL_PASSWORD not in text and SASL_PASSWORD[3:] not in text
        print(f"\nSECURITY SASL bad credentials: exit {code}; {line[:300]}")
        if code in (0, None):
            raise MissingBehaviour(f"still running 30 s after: {line[:200]}" if code is None else "exit 0")


def _other_local_addresses() -> list[str]:
    """Local addresses other than 127.0.0.1: another loopback one, and the host's own, if any."""
    out = ["127.0.0.2"]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
        address = s.getsockname()[0]
        if not address.startswith("127."):
            out.append(address)
    return out


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_metrics_host_binds_the_probe_and_metrics_server_to_that_interface(
    kafka_bootstrap: str, new_topic: str, tmp_path: Path, host: str
) -> None:
    port = free_tcp_port()
    log = tmp_path / "worker.log"
    proc = start_worker(
        kafka_bootstrap,
        new_topic,
        f"bind-{uuid.uuid4().hex[:8]}",
        idle=None,
        extra=["--metrics-host", host, "--metrics-port", str(port)],
        log_path=log,
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            time.sleep(0.1)
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] in (200, 503)
        others = {address: _answers(address, port) for address in _other_local_addresses()}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    if host == "127.0.0.1":
        assert not any(others.values()), others  # bound to loopback only
    else:
        assert all(others.values()), others  # the control: the wildcard answers everywhere
