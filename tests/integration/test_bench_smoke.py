"""`make bench-smoke`: the benchmark of `make bench` on a few hundred events. It checks that the
benchmark runs end to end and that its table holds every row this machine can run (the Quix
rows need quixstreams, here or in .venv-bench), not any speed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import QUIX_ROWS, REPO, ROWS, quix_python
from consumer.pipeline.codec.engines import resolve

pytestmark = pytest.mark.integration  # it checks that every row runs, not how fast: no need to run alone


def test_bench_smoke_prints_every_row_it_can_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--events", "400", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    rows = figures["rows"]

    expected = {key for key, _ in ROWS}
    if quix_python() is None:
        expected -= QUIX_ROWS
    if resolve("auto") != "cavro":
        expected -= {key for key in expected if key.endswith("-cavro")}
    assert expected <= rows.keys(), f"missing rows {sorted(expected - rows.keys())}; skipped {figures['skipped']}"
    for key in expected:
        row = rows[key]
        assert row["events"] == 400 and row["seconds"] > 0 and row["peak_rss_mb"] > 0, row
        assert row["label"] in done.stdout, f"{key} is not in the printed table"
    latency = next(note for note in figures["notes"] if note.startswith("Latency, input CreateTime"))
    # --smoke runs the half load only: one worker row and one floor row, each with every event timed
    assert latency.count("| worker |") == 1 and latency.count("| floor |") == 1, latency
    for run in figures["latency"]["rows"]:
        assert run["timed"] == run["events"] > 0 and 0 < run["p50"] <= run["p99"], run
    assert "Latency target at" in "\n".join(figures["notes"]), figures["notes"]
    assert any(note.startswith("Ratios") for note in figures["notes"])
    assert sum(note.startswith("Target ") for note in figures["notes"]) == 4, figures["notes"]
    gateway = next((n for n in figures["notes"] if n.startswith("Webhook gateway")), None)
    assert gateway is not None, figures["skipped"]
    assert "gateway, acknowledged (closed loop)" in gateway and "baseline: same aiohttp server" in gateway
    assert re.search(r"acknowledged (\d+) == on the topic \1: True", gateway), gateway
