"""The READMEs name only files and folders that exist: a path in backticks under one of the
repository's top folders is checked against the checkout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP = ("consumer", "tests", "bench", "deploy", "avro")
IN_THE_WHEEL_ONLY = {"consumer/_avro"}  # setup.py maps avro/ there at build time
PATH = re.compile(rf"`((?:{'|'.join(TOP)})/[\w./-]*)`")


def repo_paths(text: str) -> list[str]:
    return sorted({m.rstrip("/.") for m in PATH.findall(text)} - IN_THE_WHEEL_ONLY)


def test_the_check_finds_paths() -> None:
    assert repo_paths("see `consumer/codec/schemagen.py` and `deploy/k8s/`, not `make run`") == [
        "consumer/codec/schemagen.py",
        "deploy/k8s",
    ]


@pytest.mark.parametrize("doc", ["README.md", "deploy/README.md"])
def test_every_named_path_exists(doc: str) -> None:
    named = repo_paths((ROOT / doc).read_text())
    assert named, f"{doc} names no repository path: the pattern is wrong"
    assert [p for p in named if not (ROOT / p).exists()] == []
