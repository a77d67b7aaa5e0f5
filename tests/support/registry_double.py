"""A Confluent Schema Registry double: the real REST paths, served over HTTP on a free port.

`mock://` registries live inside one process, so a worker process and a reading test could
never share one. This double is a real HTTP server that both can reach, and it keeps its data
across `stop()` / `start()` on the same port, so a test can simulate a registry outage.

Paths served (JSON bodies, Confluent error codes):
- POST /subjects/{subject}/versions       register; the same schema keeps its id
- POST /subjects/{subject}                look up a schema under a subject
- GET  /schemas/ids/{id}                  a schema by id
- GET  /schemas/ids/{id}/subjects         subjects holding an id
- GET  /subjects                          all subjects
- GET  /subjects/{subject}/versions       versions of a subject
- GET  /subjects/{subject}/versions/{v}   one version, or `latest`
- GET  /schemas/types                     ["AVRO"]
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest


@dataclass
class _Entry:
    schema: str
    schema_type: str
    references: list[dict[str, Any]]


@dataclass
class RegistryState:
    """What the registry holds; survives stop() and start()."""

    schemas: dict[int, _Entry] = field(default_factory=dict)
    ids_by_key: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> ids, version = index + 1
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path), for assertions
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def key(schema: str, schema_type: str) -> str:
        """Identity of a schema: whitespace and key order do not make a new one."""
        try:
            text = json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
        except ValueError:
            text = schema
        return f"{schema_type}:{text}"

    def register(self, subject: str, entry: _Entry) -> tuple[int, int]:
        key = self.key(entry.schema, entry.schema_type)
        schema_id = self.ids_by_key.get(key)
        if schema_id is None:
            schema_id = self.ids_by_key[key] = len(self.schemas) + 1
            self.schemas[schema_id] = entry
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id, versions.index(schema_id) + 1


class _NotFound(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        state = self.server.state
        with state.lock:
            state.requests.append((method, path))
        try:
            body: Any = None
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
            with state.lock:
                status, reply = self._route(method, path, body, state)
        except _NotFound as exc:
            status, reply = 404, {"error_code": exc.code, "message": str(exc)}
        except (ValueError, KeyError, TypeError) as exc:
            status, reply = 422, {"error_code": 42201, "message": f"invalid request: {exc}"}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def _route(method: str, path: str, body: Any, state: RegistryState) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.split("/") if p]
        if method == "GET" and parts == ["subjects"]:
            return 200, sorted(state.subjects)
        if method == "GET" and parts == ["schemas", "types"]:
            return 200, ["AVRO"]
        if parts[:2] == ["schemas", "ids"] and len(parts) >= 3 and method == "GET":
            schema_id = int(parts[2])
            entry = state.schemas.get(schema_id)
            if entry is None:
                raise _NotFound(40403, f"Schema {schema_id} not found")
            if parts[3:] == ["subjects"]:
                return 200, sorted(s for s, ids in state.subjects.items() if schema_id in ids)
            return 200, _schema_body(entry)
        if not parts or parts[0] != "subjects" or len(parts) < 2:
            raise _NotFound(404, f"no such path {path}")
        subject = parts[1]
        if method == "POST" and parts[2:] == ["versions"]:
            entry = _Entry(body["schema"], body.get("schemaType") or "AVRO", body.get("references") or [])
            schema_id, version = state.register(subject, entry)
            return 200, {"id": schema_id, "subject": subject, "version": version, **_schema_body(entry)}
        if method == "POST" and len(parts) == 2:
            ids = state.subjects.get(subject)
            if ids is None:
                raise _NotFound(40401, f"Subject '{subject}' not found.")
            wanted = state.ids_by_key.get(state.key(body["schema"], body.get("schemaType") or "AVRO"))
            if wanted not in ids:
                raise _NotFound(40403, "Schema not found")
            return 200, _version_body(state, subject, ids.index(wanted) + 1)
        if method == "GET":
            ids = state.subjects.get(subject)
            if ids is None:
                raise _NotFound(40401, f"Subject '{subject}' not found.")
            if parts[2:] == ["versions"]:
                return 200, list(range(1, len(ids) + 1))
            if len(parts) == 4 and parts[2] == "versions":
                version = len(ids) if parts[3] in ("latest", "-1") else int(parts[3])
                if not 1 <= version <= len(ids):
                    raise _NotFound(40402, f"Version {parts[3]} not found.")
                return 200, _version_body(state, subject, version)
        raise _NotFound(404, f"no such path {method} {path}")


def _schema_body(entry: _Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"schema": entry.schema}
    if entry.schema_type != "AVRO":  # the real registry omits the default type
        out["schemaType"] = entry.schema_type
    if entry.references:
        out["references"] = entry.references
    return out


def _version_body(state: RegistryState, subject: str, version: int) -> dict[str, Any]:
    schema_id = state.subjects[subject][version - 1]
    return {"subject": subject, "version": version, "id": schema_id, **_schema_body(state.schemas[schema_id])}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, state: RegistryState) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RegistryDouble:
    """`start()`, use `.url`, `stop()`; `start()` again serves the same data on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.state = RegistryState()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> RegistryDouble:
        if self._server is None:
            self._server = _Server(self.port, self.state)
            self._thread = threading.Thread(target=self._server.serve_forever, name="registry-double", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: clients get 'connection refused' until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = self._thread = None

    # -- for assertions -------------------------------------------------------------------
    def subjects(self) -> list[str]:
        with self.state.lock:
            return sorted(self.state.subjects)

    def latest(self, subject: str) -> tuple[int, str]:
        """(schema id, schema text) of a subject's latest version."""
        with self.state.lock:
            schema_id = self.state.subjects[subject][-1]
            return schema_id, self.state.schemas[schema_id].schema

    def registrations(self, subject: str | None = None) -> int:
        """How many register requests came in (for one subject, or all)."""
        with self.state.lock:
            return sum(
                1
                for method, path in self.state.requests
                if method == "POST"
                and path.endswith("/versions")
                and (subject is None or unquote(path) == f"/subjects/{subject}/versions")
            )


@pytest.fixture
def registry_double() -> Iterator[RegistryDouble]:
    """A running registry double on a free port, stopped at teardown."""
    double = RegistryDouble().start()
    try:
        yield double
    finally:
        double.stop()
