"""Fixtures of the observability tests: one observed worker run (see
`tests.support.observed_worker.observe_run`), and Prometheus' own tools."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.observed_worker import ObservedRun, observe_run


@pytest.fixture(scope="session")
def observed_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedRun]:
    with observe_run(kafka_bootstrap, tmp_path_factory.mktemp("observed-run")) as run:
        yield run


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("`promtool` is not on PATH: apt-get install -y prometheus (.ci/run does)")
    return path


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("`prometheus` is not on PATH: apt-get install -y prometheus (.ci/run does)")
    return path
