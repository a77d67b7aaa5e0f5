"""The repository stands alone: a clone of it, and nothing beside it, builds and passes.

Every file git knows (tracked, or new and not ignored) is read; a path that reaches outside the
checkout fails the test, naming the file and line: the team's reference folder beside the
checkout (SIBLING below: relative, joined to a parent folder, a Make variable, or the absolute
path it has on the team's machines), the parent of the repository's root (`REPO.parent`), or
`Path(__file__)` climbed above the root. Prose in
Markdown is not read. Voucherify's reference data the code needs lives in the package
(`consumer.devtools.corpus`), and it is all there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from consumer.devtools import corpus

REPO = Path(__file__).resolve().parents[2]
SELF = Path(__file__).resolve().relative_to(REPO).as_posix()

# The team's reference folder that sits beside the checkout on its machines (never in a user's clone).
SIBLING = "shared"
# Textual forms of a path beside or above the checkout.
OUTSIDE = [
    (re.compile(rf"\.\./+{SIBLING}\b"), f"../{SIBLING}"),
    (re.compile(rf"/work/{SIBLING}\b"), f"an absolute /work/{SIBLING}"),
    (re.compile(rf"^\s*(?:export\s+)?{SIBLING.upper()}\s*[:?+!]?=", re.M), f"a {SIBLING.upper()} variable"),
    (re.compile(rf"""["']\.\.["']\s*[,/)]\s*["']{SIBLING}["']"""), f'".." joined with "{SIBLING}"'),
    (re.compile(rf"""\.parents?(?:\[\d+\])?\s*/\s*["']{SIBLING}["']"""), f'a join of "{SIBLING}" to a parent folder'),
    (re.compile(r"\b_?(?:REPO|ROOT|REPO_ROOT|PROJECT_ROOT)\.parent\b"), "the parent of the repository's root"),
]
# Path(__file__) climbed with .parent / .parents[N]: how far, to compare with the file's depth.
CLIMB = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?(?P<climb>(?:\.parent\b|\.parents\[\d+\])+)")
STEP = re.compile(r"\.parent\b|\.parents\[(\d+)\]")


def _files() -> list[str]:
    """The files git knows; outside a git checkout (an unpacked sdist), every file but hidden folders'."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return sorted(
            path.relative_to(REPO).as_posix()
            for path in REPO.rglob("*")
            if path.is_file()
            and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(REPO).parts)
        )
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name})


def _levels(climb: str) -> int:
    """How many folders `.parent`/`.parents[N]` steps climb from the file (its folder is 1)."""
    return sum(1 if m.group(1) is None else int(m.group(1)) + 1 for m in STEP.finditer(climb))


def outside_paths(name: str, text: str) -> list[str]:
    """Each place in the file `name` (relative to the root) whose path reaches outside the checkout."""
    found = []
    for pattern, what in OUTSIDE:
        for m in pattern.finditer(text):
            found.append(f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {what}: {m.group(0).strip()!r}")
    if name.endswith(".py"):
        folders = name.count("/")  # the root is `folders + 1` levels up from the file
        for m in CLIMB.finditer(text):
            if _levels(m.group("climb")) > folders + 1:
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{name}:{line}: Path(__file__) climbed above the root: {m.group(0)!r}")
    return found


def test_no_tracked_file_reads_a_path_outside_the_checkout() -> None:
    found = []
    for name in _files():
        path = REPO / name
        if name == SELF or name.endswith(".md") or not path.is_file():
            continue
        found += outside_paths(name, path.read_bytes().decode("utf-8", errors="replace"))
    assert found == [], "paths outside the checkout (the repository must stand alone):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("Makefile", f"{SIBLING.upper()} ?= ../{SIBLING}\n"),
        ("tests/unit/t.py", f'X = REPO.parent / "{SIBLING}" / "voucherify"\n'),
        ("tests/unit/t.py", f'X = Path(__file__).resolve().parents[3] / "{SIBLING}"\n'),
        ("tests/support/t.py", 'X = Path(__file__).resolve().parents[2].parent / "examples"\n'),
        ("tests/t.py", "X = Path(__file__).parent.parent.parent\n"),
        ("tools/x.sh", f'cat "/work/{SIBLING}/voucherify/README.md"\n'),
        ("x.py", f'os.path.join(ROOT, "..", "{SIBLING}")\n'),
    ],
)
def test_each_form_of_an_outside_path_is_caught(name: str, text: str) -> None:
    assert outside_paths(name, text)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("tests/unit/t.py", 'X = Path(__file__).resolve().parents[2] / "avro"\n'),
        ("consumer/devtools/t.py", 'X = Path(__file__).resolve().parent / "data"\n'),
        (".ci/run", 'cd "$(dirname "$0")/.."\n'),
        ("consumer/config/gateway.py", f'x: str = {SIBLING}("bootstrap_servers")\n'),
    ],
)
def test_paths_inside_the_checkout_pass(name: str, text: str) -> None:
    assert outside_paths(name, text) == []


def test_voucherify_data_lives_in_the_package() -> None:
    package = Path(corpus.__file__).resolve().parent
    assert corpus.EXAMPLES.is_relative_to(package) and corpus.OPENAPI.is_relative_to(package)
    examples = sorted(corpus.EXAMPLES.glob("*.json"))
    assert len(examples) == 32
    for path in examples:
        event = json.loads(path.read_text())
        assert path.stem == event["type"] and event["id"].startswith("evcus_")
    openapi = json.loads(corpus.OPENAPI.read_text())
    assert len(openapi["CustomerActivity.type"]) == 74
    assert {"type_to_data_schema", "schemas"} <= openapi.keys()
    assert "public API documentation" in (corpus.VOUCHERIFY / "README.md").read_text()
