"""`/metrics`, `/healthz` and `/readyz` on one small threaded HTTP server."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Probes(Protocol):
    def live(self) -> tuple[bool, str]: ...
    def ready(self) -> tuple[bool, str]: ...


class Health:
    """What the probes read; the poll loop writes it. Plain attributes: cheap to probe."""

    def __init__(self, stale_after: float = 30.0) -> None:
        self.stale_after = stale_after
        self.last_turn = time.monotonic()
        self.connected = False
        self.assigned = 0
        self.stopping = False
        self.registry_ok = True  # False while Schema Registry lookups fail (partitions held)

    def turned(self) -> None:
        self.last_turn = time.monotonic()

    def live(self) -> tuple[bool, str]:
        age = time.monotonic() - self.last_turn
        return age < self.stale_after, f"last poll {age:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "stopping"
        if not self.connected:
            return False, "not connected to Kafka"
        if not self.registry_ok:
            return False, "schema registry unavailable: partitions held, retrying"
        if self.assigned == 0:
            return False, "no partitions assigned"
        return True, f"{self.assigned} partition(s) assigned"


def serve(host: str, port: int, registry: CollectorRegistry, health: Probes) -> ThreadingHTTPServer:
    """Start the server on a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, why = health.live() if path == "/healthz" else health.ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds would flood the logs

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
