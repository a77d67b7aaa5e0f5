"""The wheel works on its own: built from the sources, installed into a fresh venv outside the
checkout, it carries the Avro contract (`consumer/_avro`) and Voucherify's reference data (the
demo sends the whole corpus, schemagen reads the OpenAPI facts), round-trips the corpus through
`codec encode | codec decode`, exports the schemas, and names a missing contract clearly."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.contract import ENVELOPE, STREAM_SCHEMAS
from consumer.devtools.corpus import EXAMPLES, OPENAPI
from consumer.pipeline.codec.schemas import SchemaStore

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "consumer", "avro")

pytestmark = pytest.mark.timeout(240)


def _run(
    cmd: list[str], *, cwd: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """(wheel, the venv's bin/, a clean environment) for a wheel installed outside the checkout."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:  # a copy: the build writes build/ and *.egg-info next to its sources
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACTIVITY_", "PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(src)], cwd=root, env=env
    )
    assert built.returncode == 0, built.stderr[-3000:]
    # setuptools stops building deprecated forms (a TOML-table license) from 2027-02-18
    deprecations = [
        line for line in built.stderr.splitlines() if re.search(r"deprecat|BuildBackendWarning", line, re.I)
    ]
    assert deprecations == [], "\n".join(deprecations)
    (wheel,) = (root / "dist").glob("customer_activity_consumer-*.whl")

    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    # Dependencies come from PyPI or pip's cache, as for any user of the wheel.
    done = _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=root, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    yield wheel, bin_dir, env


def test_wheel_declares_its_license_as_an_spdx_expression(installed: tuple[Path, Path, dict[str, str]]) -> None:
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        (metadata,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        headers = zf.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in headers


def test_wheel_carries_every_avsc(installed: tuple[Path, Path, dict[str, str]]) -> None:
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n.removeprefix("consumer/_avro/") for n in zf.namelist() if n.startswith("consumer/_avro/")}
    in_checkout = {str(p.relative_to(REPO / "avro")) for p in (REPO / "avro").rglob("*.avsc")}
    assert in_checkout and in_checkout <= shipped
    assert "envelope/type_to_shape.json" in shipped


def test_installed_worker_reads_its_packaged_contract(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, bin_dir, env = installed
    where = _run(
        [str(bin_dir / "python"), "-c", "import consumer.pipeline.codec.schemas as s; print(s.default_avro_dir())"],
        cwd=tmp_path,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    avro_dir = Path(where.stdout.strip())
    assert avro_dir.name == "_avro" and str(avro_dir).startswith(str(bin_dir.parent)), avro_dir


def test_wheel_carries_voucherify_data(installed: tuple[Path, Path, dict[str, str]]) -> None:
    wheel, _, _ = installed
    prefix = "consumer/devtools/data/voucherify/"
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n.removeprefix(prefix) for n in zf.namelist() if n.startswith(prefix)}
    examples = {f"examples/{p.name}" for p in EXAMPLES.glob("*.json")}
    assert len(examples) == 32
    assert shipped == {*examples, OPENAPI.name, "README.md"}


def test_installed_demo_sends_the_whole_corpus(installed: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    """Outside the checkout the demo's traffic is Voucherify's 32 examples from the wheel (the
    seed fixtures are the checkout's only); no ACTIVITY_DEMO_CORPUS is set."""
    _, bin_dir, env = installed
    probe = (
        "import json; from consumer.devtools import demo; "
        "print(json.dumps({'dirs': [str(d) for d in demo.corpus_dirs() if d.is_dir()], 'events': demo.load_corpus()}))"
    )
    run = _run([str(bin_dir / "python"), "-c", probe], cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout)
    (where,) = seen["dirs"]
    assert where.startswith(str(bin_dir.parent)) and where.endswith("consumer/devtools/data/voucherify/examples"), where
    assert seen["events"] == [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]


def test_installed_schemagen_reads_the_packaged_openapi(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, bin_dir, env = installed
    run = _run([str(bin_dir / "python"), "-m", "consumer.devtools.schemagen", "--out", "avro"], cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    envelope = "envelope/CustomerActivity.avsc"
    assert (tmp_path / "avro" / envelope).read_text() == (REPO / "avro" / envelope).read_text()


def test_codec_encode_then_decode_is_the_identity(installed: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    _, bin_dir, env = installed
    events = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    assert events
    lines = "".join(json.dumps(e) + "\n" for e in events)
    cli = str(bin_dir / "activity-consumer")
    encoded = _run([cli, "codec", "encode"], cwd=tmp_path, env=env, stdin=lines)
    assert encoded.returncode == 0, encoded.stderr[-2000:]
    decoded = _run([cli, "codec", "decode"], cwd=tmp_path, env=env, stdin=encoded.stdout)
    assert decoded.returncode == 0, decoded.stderr[-2000:]
    assert [json.loads(line) for line in decoded.stdout.splitlines()] == events


def test_schema_export(installed: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    _, bin_dir, env = installed
    cli = str(bin_dir / "activity-consumer")
    store = SchemaStore(REPO / "avro")
    envelope = _run([cli, "schema", "export"], cwd=tmp_path, env=env)
    assert envelope.returncode == 0, envelope.stderr
    assert json.loads(envelope.stdout) == store.expand(ENVELOPE)
    result = _run([cli, "schema", "export", "redemptions"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == store.expand(STREAM_SCHEMAS["redemptions"])
    unknown = _run([cli, "schema", "export", "NoSuchRecord"], cwd=tmp_path, env=env)
    assert unknown.returncode == 2 and "NoSuchRecord" in unknown.stderr and "Traceback" not in unknown.stderr


def test_missing_contract_is_a_clear_error(installed: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    _, bin_dir, env = installed
    empty = tmp_path / "empty"
    empty.mkdir()
    run = _run(
        [str(bin_dir / "activity-consumer"), "codec", "encode"],
        cwd=tmp_path,
        env={**env, "ACTIVITY_AVRO_DIR": str(empty)},
        stdin="{}\n",
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert str(empty) in run.stderr and "ACTIVITY_AVRO_DIR" in run.stderr
