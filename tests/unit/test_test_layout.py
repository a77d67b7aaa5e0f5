"""The tests' own layout: helpers live in tests/support only, nothing imports a conftest or a
test module, and tests/unit's folders mirror consumer/.

* A test module, conftest or helper (under tests/ or bench/) imports only `tests.support...`
  of the tests' modules: no `conftest`, no `test_*` module, no `tests.<folder>.<helper>`, no
  relative import. Lazy imports inside functions and `pytest_plugins` count too.
* A .py file under tests/ that is neither a test module (`test_*.py`) nor a conftest is a
  helper, and sits in tests/support; an `__init__.py` elsewhere holds no code.
* A test module under tests/unit/ sits in a folder that exists under consumer/ (the top of
  tests/unit for the top of the package and for tests of the whole package), and every folder
  under tests/unit is a package, so two test modules may share a name in different folders.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SUPPORT = TESTS / "support"
UNIT = TESTS / "unit"
PACKAGE = ROOT / "consumer"
SCANNED = ("tests", "bench")


def imported_modules(source: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `source`, lazy ones too; a relative import is given
    with its leading dots, and each `pytest_plugins` entry as a module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            yield node.lineno, module
            if module.split(".")[0] == "tests":  # `from tests import conftest`: a name may be a module
                yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets
        ):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    yield node.lineno, v.value


def import_problem(module: str) -> str | None:
    """Why importing `module` from a test, conftest or helper is not allowed; None if it is."""
    if module.startswith("."):
        return "a relative import (import tests.support.<module> instead)"
    parts = module.split(".")
    if "conftest" in parts:
        return "imports a conftest (what tests import belongs in tests/support)"
    if any(p.startswith("test_") for p in parts):
        return "imports a test module (what tests import belongs in tests/support)"
    if parts[0] == "tests" and len(parts) > 1 and parts[1] != "support":
        return "imports a module of tests/ outside tests/support"
    return None


def import_problems(name: str, source: str) -> list[str]:
    return [
        f"{name}:{line}: {module}: {why}"
        for line, module in imported_modules(source)
        if (why := import_problem(module)) is not None
    ]


def has_code(source: str) -> bool:
    """Anything in a module besides its docstring (and `from __future__` imports)."""
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return any(not (isinstance(n, ast.ImportFrom) and n.module == "__future__") for n in body)


def misplaced_module(rel: Path, source: str) -> str | None:
    """Why the .py file at `rel` (relative to the repository) is not where it belongs."""
    if rel.parts[0] != "tests" or rel.name == "conftest.py" or rel.name.startswith("test_"):
        return None
    if rel.parts[:2] == ("tests", "support"):
        return None
    if rel.name == "__init__.py":
        return "an __init__.py with code outside tests/support" if has_code(source) else None
    return "a helper outside tests/support"


def unit_folder_problem(rel: Path, package_dirs: set[Path]) -> str | None:
    """Why the test module at `rel` (tests/unit/...) is in the wrong folder; None if it is not."""
    folder = Path(*rel.parts[2:-1])
    if folder != Path() and folder not in package_dirs:
        return f"tests/unit/{folder.as_posix()}/ has no consumer/{folder.as_posix()}/ to mirror"
    return None


def python_files() -> Iterator[Path]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def package_dirs() -> set[Path]:
    return {
        p.relative_to(PACKAGE)
        for p in PACKAGE.rglob("*")
        if p.is_dir() and (p / "__init__.py").exists() and "__pycache__" not in p.parts
    }


# -- the checks find what they are meant to ---------------------------------------------------
# Written as (module, name) so that a grep for such imports does not find this file.
@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("tests.conftest", "TopicFactory"),
        ("tests.observability.conftest", "ObservedRun"),
        ("tests.deploy.test_deploy", "_render"),
        (".test_properties", "SETTINGS"),
        ("._support", "load"),
        (".support", "post"),
        (".", "support"),
        ("tests.faults.mock_cluster", "MockCluster"),
        ("tests", "conftest"),
    ],
)
def test_the_check_finds_imports_of_conftests_test_modules_and_stray_helpers(module: str, name: str) -> None:
    source = f"from {module} import {name}\n"
    assert import_problems("t.py", source), source


@pytest.mark.parametrize(
    "source",
    [
        "import tests.integration.worker_support\n",
        "def f():\n    from tests.integration.worker_support import read_all\n",
        'pytest_plugins = ["tests.faults.plugin"]\n',
    ],
)
def test_the_check_finds_plain_lazy_and_plugin_imports(source: str) -> None:
    assert import_problems("t.py", source), source


@pytest.mark.parametrize(
    "source",
    [
        "from tests.support.workers import read_all\nimport tests.support.mock_cluster\n",
        "from tests.support import workers\n",
        'pytest_plugins = ["tests.support.registry_double"]\n',
        "from consumer.pipeline.codec import AvroCodec\nimport pytest\nimport unittest.mock\n",
    ],
)
def test_the_check_lets_support_imports_through(source: str) -> None:
    assert import_problems("t.py", source) == []


def test_the_check_finds_misplaced_modules() -> None:
    assert misplaced_module(Path("tests/integration/worker_support.py"), "X = 1\n")
    assert misplaced_module(Path("tests/conformance/_support.py"), '"""doc"""\nX = 1\n')
    assert misplaced_module(Path("tests/faults/__init__.py"), "def helper(): ...\n")
    assert misplaced_module(Path("tests/faults/__init__.py"), '"""A package."""\n') is None
    assert misplaced_module(Path("tests/faults/test_x.py"), "X = 1\n") is None
    assert misplaced_module(Path("tests/faults/conftest.py"), "X = 1\n") is None
    assert misplaced_module(Path("tests/support/workers.py"), "X = 1\n") is None
    assert misplaced_module(Path("bench/stream.py"), "X = 1\n") is None
    dirs = {Path("pipeline"), Path("pipeline/codec")}
    assert unit_folder_problem(Path("tests/unit/codec/test_x.py"), dirs)
    assert unit_folder_problem(Path("tests/unit/pipeline/codec/test_x.py"), dirs) is None
    assert unit_folder_problem(Path("tests/unit/test_x.py"), dirs) is None


# -- the tests as they are ---------------------------------------------------------------------
def test_nothing_imports_a_conftest_a_test_module_or_a_helper_outside_tests_support() -> None:
    found: list[str] = []
    for path in python_files():
        found += import_problems(path.relative_to(ROOT).as_posix(), path.read_text())
    assert found == []


def test_helpers_live_in_tests_support_only() -> None:
    assert SUPPORT.is_dir()
    found = []
    for path in python_files():
        rel = path.relative_to(ROOT)
        if (why := misplaced_module(rel, path.read_text())) is not None:
            found.append(f"{rel.as_posix()}: {why}")
    assert found == []


def test_unit_test_folders_mirror_the_package() -> None:
    dirs = package_dirs()
    assert Path("pipeline/codec") in dirs, "the package's folders were not found"
    modules = sorted(UNIT.rglob("test_*.py"))
    assert modules, "no unit test modules found"
    found = [why for p in modules if (why := unit_folder_problem(p.relative_to(ROOT), dirs)) is not None]
    assert found == []


def test_every_unit_test_folder_is_a_package() -> None:
    folders = {UNIT, *(p for p in UNIT.rglob("*") if p.is_dir() and "__pycache__" not in p.parts)}
    assert sorted(p.relative_to(ROOT).as_posix() for p in folders if not (p / "__init__.py").exists()) == []
