"""Helpers for the gateway's tests: deliveries built from the corpus, signed POSTs over real
HTTP (urllib), and the gateway itself on a real port in a thread of this process."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.config import GatewaySettings, build
from consumer.devtools import webhooks
from consumer.devtools.corpus import EXAMPLES as CORPUS
from consumer.ingest.gateway import WEBHOOK_PATH
from consumer.ingest.signature import SIGNATURE_HEADER, sign

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec-test-0123456789"
PROJECT = "proj_t3st"
EVENT_SOURCE = webhooks.EVENT_SOURCE


def corpus() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))]


def delivery(activity: Mapping[str, Any], kind: str = "webhook", *, project: str = PROJECT) -> dict[str, Any]:
    """A v2024-01-01 delivery carrying `activity`, of either kind."""
    return webhooks.delivery(activity, kind, project=project, event_source=EVENT_SOURCE)


def expected_activity(activity: Mapping[str, Any]) -> dict[str, Any]:
    """What the gateway writes for `delivery(activity)`."""
    return {**activity, "event_source": EVENT_SOURCE, "group_id": activity.get("group_id")}


def body_of(doc: Any, pretty: bool) -> bytes:
    if pretty:
        return json.dumps(doc, indent=2, ensure_ascii=False).encode()
    return webhooks.compact(doc)


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


RunningGateway = webhooks.GatewayThread


@contextlib.contextmanager
def running_gateway(config: GatewaySettings, *, ready: bool = True) -> Iterator[RunningGateway]:
    gateway = RunningGateway(config).start()
    try:
        if ready:
            gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()
