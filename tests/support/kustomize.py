"""deploy/ for the tests: its paths, the apps' names, every kustomization (base and overlays)
rendered with `kubectl kustomize` (or `kustomize build`), the rendered objects picked by kind,
and kubernetes-validate for strict offline validation. A missing tool fails the test that
needs it, with a message saying what to install."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"

GATEWAY_JOB = "customer-activity-gateway"  # the webhook gateway's scrape job and app name
K8S_VERSION = "1.32.0"  # schema version for kubernetes-validate; matches the kubectl in CI
TOOL_TIMEOUT = 120


def _run(argv: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)


def _assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"`{' '.join(proc.args)}` exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is not installed: .venv/bin/pip install kubernetes-validate")
    return kubernetes_validate


KUSTOMIZATIONS = ["base", *sorted(f"overlays/{p.name}" for p in (K8S / "overlays").iterdir()
                                  if (p / "kustomization.yaml").exists())]  # fmt: skip


@functools.cache
def _render_text(kustomization: str) -> str:
    path = K8S / kustomization
    if shutil.which("kubectl"):
        argv = ["kubectl", "kustomize", str(path)]
    elif shutil.which("kustomize"):
        argv = ["kustomize", "build", str(path)]
    else:
        pytest.fail("neither `kubectl` (with built-in kustomize) nor `kustomize` is on PATH")
    proc = _run(argv)
    _assert_ok(proc)
    return proc.stdout


def _app(doc: dict[str, Any]) -> str | None:
    return cast(str | None, (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/name"))


def _render(kustomization: str, part: str | None = "worker") -> list[dict[str, Any]]:
    """The rendered objects of one part: the worker's (default), the gateway's, or all (None)."""
    docs = [d for d in yaml.safe_load_all(_render_text(kustomization)) if d]
    if part is None:
        return docs
    return [d for d in docs if (_app(d) == GATEWAY_JOB) == (part == "gateway")]


def _all(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = _all(docs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


_QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?$")
_FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}  # fmt: skip


def _quantity(value: str | int) -> float:
    match = _QUANTITY.match(str(value))
    assert match, f"unparsable quantity {value!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]
