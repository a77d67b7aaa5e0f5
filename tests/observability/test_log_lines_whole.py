"""Processes that share stdout (`--processes N`) never split each other's log lines: each line
is written whole, so every line of their joint output is one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys

LOGGING = """
from consumer.telemetry import logs
logs.configure("json", "info")
log = logs.get("test")
for i in range(3000):
    log.info("line_written", n=i, padding="x" * 200)
"""


def test_two_processes_logging_to_one_pipe_never_split_a_line() -> None:
    both = subprocess.run(
        ["bash", "-c", f"{sys.executable} -c '{LOGGING}' & {sys.executable} -c '{LOGGING}' & wait"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = both.stdout.splitlines()
    assert len(lines) == 6000
    assert all(json.loads(line)["event"] == "line_written" for line in lines)
