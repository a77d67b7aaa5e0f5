"""Voucherify's side of a webhook, for the demo and the tests: deliveries built from activities,
signed and POSTed over HTTP, and the gateway run in a thread of this process."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

from consumer.config import GatewaySettings
from consumer.ingest.gateway import WEBHOOK_PATH
from consumer.ingest.server import GatewayServer
from consumer.ingest.signature import SIGNATURE_HEADER, sign

EVENT_SOURCE: dict[str, Any] = {"channel": "API", "api_key": {"name": "backend", "app_id": "app_123"}}


def delivery(
    activity: Mapping[str, Any],
    kind: str = "webhook",
    *,
    project: str,
    event_source: Mapping[str, Any] = EVENT_SOURCE,
) -> dict[str, Any]:
    """A v2024-01-01 delivery carrying `activity`: a project-settings webhook or a distribution."""
    source_id = f"wh_{uuid.uuid4().hex[:16]}" if kind == "webhook" else f"distr_{uuid.uuid4().hex[:16]}"
    customer = activity["data"].get("customer") if isinstance(activity.get("data"), dict) else None
    return {
        "id": f"whs_{uuid.uuid4().hex[:20]}",
        "project_id": project,
        "created_at": activity.get("created_at", "2026-12-01T10:00:00.000Z"),
        # distributions carry whatever the user typed as the event name
        "type": activity["type"] if kind == "webhook" else "My distribution event",
        "data": activity["data"],
        "source": {"id": source_id, "object": kind, "target_url": f"https://example.test{WEBHOOK_PATH}"},
        "event": {
            "id": activity["id"],
            "type": activity["type"],
            "created_at": activity["created_at"],
            "entity_id": customer.get("id") if isinstance(customer, dict) else None,
            "group_id": activity.get("group_id"),
            "event_source": dict(event_source),
        },
    }


def compact(doc: Any) -> bytes:
    """The body as Voucherify signs it: no whitespace outside strings."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookClient:
    """One keep-alive connection to a gateway, as Voucherify's sender: signed POSTs of raw bytes."""

    def __init__(self, port: int, secret: str, host: str = "127.0.0.1", timeout_s: float = 10.0) -> None:
        self.secret = secret
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout_s)

    def post(self, body: bytes, *, signature: str | None = None) -> tuple[int, float]:
        """(status, Retry-After seconds or 0)."""
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature if signature is not None else sign(self.secret, body),
        }
        try:
            self._conn.request("POST", WEBHOOK_PATH, body, headers)
            answer = self._conn.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()  # reconnects on the next request
            return 0, 1.0
        return answer.status, float(answer.headers.get("Retry-After") or 0)

    def close(self) -> None:
        self._conn.close()


class GatewayThread:
    """A GatewayServer on its own event loop in a daemon thread: `start()`, then `stop()`."""

    def __init__(self, config: GatewaySettings) -> None:
        self.settings = config
        self.server = GatewayServer(config)
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self.left: int | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    def start(self) -> GatewayThread:
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the gateway did not start within 30 s")
        if self._error is not None:
            raise self._error
        return self

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway never became ready")
            time.sleep(0.05)

    def stop(self) -> int:
        """Answer what is in flight and flush: the records left unacknowledged."""
        if self.left is None:
            future = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
            self.left = future.result(timeout=60)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        return self.left

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        value = self.server.registry.get_sample_value(name, dict(labels or {}))
        return 0.0 if value is None else value
