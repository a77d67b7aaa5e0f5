"""Helpers for the gateway's tests: deliveries built from the corpus, signed POSTs over real
HTTP (urllib), and the gateway itself on a real port in a thread of this process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.config import GatewaySettings, build
from consumer.ingest.gateway import WEBHOOK_PATH
from consumer.ingest.server import GatewayServer
from consumer.ingest.signature import SIGNATURE_HEADER, sign

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "voucherify" / "examples"
SECRET = "whsec-test-0123456789"
PROJECT = "proj_t3st"
EVENT_SOURCE = {"channel": "API", "api_key": {"name": "backend", "app_id": "app_123"}}


def corpus() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))]


def delivery(activity: Mapping[str, Any], kind: str = "webhook", *, project: str = PROJECT) -> dict[str, Any]:
    """A v2024-01-01 delivery carrying `activity`, of either kind."""
    source_id = f"wh_{uuid.uuid4().hex[:16]}" if kind == "webhook" else f"distr_{uuid.uuid4().hex[:16]}"
    customer = activity["data"].get("customer") if isinstance(activity.get("data"), dict) else None
    return {
        "id": f"whs_{uuid.uuid4().hex[:20]}",
        "project_id": project,
        "created_at": "2026-12-01T10:00:00.000Z",
        # distributions carry whatever the user typed as the event name
        "type": activity["type"] if kind == "webhook" else "My distribution event",
        "data": activity["data"],
        "source": {"id": source_id, "object": kind, "target_url": "https://example.test/webhooks/voucherify"},
        "event": {
            "id": activity["id"],
            "type": activity["type"],
            "created_at": activity["created_at"],
            "entity_id": customer.get("id") if isinstance(customer, dict) else None,
            "group_id": activity.get("group_id"),
            "event_source": EVENT_SOURCE,
        },
    }


def expected_activity(activity: Mapping[str, Any]) -> dict[str, Any]:
    """What the gateway writes for `delivery(activity)`."""
    return {**activity, "event_source": EVENT_SOURCE, "group_id": activity.get("group_id")}


def body_of(doc: Any, pretty: bool) -> bytes:
    if pretty:
        return json.dumps(doc, indent=2, ensure_ascii=False).encode()
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def post(
    port: int,
    body: bytes,
    *,
    secret: str | None = SECRET,
    signature: str | None = None,
    signed: bytes | None = None,
    path: str = WEBHOOK_PATH,
    method: str = "POST",
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Answer:
    """One HTTP request to the gateway; signed with `secret` over `signed` (default: the body)."""
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    if signature is None and secret is not None:
        signature = sign(secret, body if signed is None else signed)
    if signature is not None:
        all_headers[SIGNATURE_HEADER] = signature
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body if method == "POST" else None, method=method, headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, _json(response.read()), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, _json(exc.read()), dict(exc.headers))


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {"raw": raw.decode(errors="replace")}
    return doc if isinstance(doc, dict) else {"raw": doc}


def settings(bootstrap: str, topic: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "host": "127.0.0.1",
        "port": 0,
        "webhook_secrets": (SECRET,),
        "log_format": "json",
        **overrides,
    }
    result: GatewaySettings = build(values, environ={}, cls=GatewaySettings)
    return result


class RunningGateway:
    """A GatewayServer on its own event loop in a daemon thread."""

    def __init__(self, config: GatewaySettings) -> None:
        self.settings = config
        self.server = GatewayServer(config)
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-gateway", daemon=True)
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

    def start(self) -> RunningGateway:
        self._thread.start()
        assert self._started.wait(30), "the gateway did not start"
        if self._error is not None:
            raise self._error
        return self

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def wait_ready(self, timeout: float = 30.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while get(self.port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "the gateway never became ready"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.left is None:
            future = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
            self.left = future.result(timeout=60)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        return self.left

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        value = self.server.registry.get_sample_value(name, dict(labels or {}))
        return 0.0 if value is None else value


@contextlib.contextmanager
def running_gateway(config: GatewaySettings, *, ready: bool = True) -> Iterator[RunningGateway]:
    gateway = RunningGateway(config).start()
    try:
        if ready:
            gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()
