"""A Tansu broker whose data survives a restart: S3 storage served by moto's S3 server.

Tansu 0.6's ``s3://`` engine talks to any S3 API; ``moto_server`` (PyPI ``moto[server]``, a dev
extra) is a real S3 API over HTTP on loopback. :func:`s3_broker` starts both, creates the bucket,
and yields an :class:`EmbeddedBroker` whose ``restart(signal)`` stops Tansu with that signal and
starts it again on the same port and storage.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3

from consumer.devtools.embedded_broker import EmbeddedBroker, free_tcp_port

BUCKET = "tansu"


class MotoS3:
    """``moto_server`` on a free loopback port, with the bucket Tansu stores into."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_tcp_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        assert exe, "moto_server not found: pip install 'moto[server]' (the dev extra)"
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._await_ready(30.0)
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)

    @property
    def env(self) -> dict[str, str]:
        """What Tansu's S3 engine reads (object_store's AWS_* settings)."""
        return {
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def _await_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, f"moto_server exited with {self.proc.returncode}"
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=1.0):
                    return
            except urllib.error.HTTPError:
                return  # it answers HTTP: up
            except OSError:
                assert time.monotonic() < deadline, f"moto_server did not answer on {self.endpoint} in {timeout_s}s"
                time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


@contextlib.contextmanager
def s3_broker(log_dir: Path, extra_args: tuple[str, ...] = ()) -> Iterator[EmbeddedBroker]:
    """A started Tansu on fresh S3 storage (moto); both stopped on exit. Logs go to `log_dir`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    s3 = MotoS3(log_dir / "moto.log")
    try:
        broker = EmbeddedBroker(
            storage=f"s3://{BUCKET}/",
            env=s3.env,
            log_path=log_dir / "tansu.log",
            startup_timeout_s=60.0,
            extra_args=extra_args,
        )
        with broker:
            yield broker
    finally:
        s3.close()
