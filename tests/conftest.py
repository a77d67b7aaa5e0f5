"""Shared fixtures: a real Kafka-protocol broker for integration tests.

``KAFKA_BOOTSTRAP_SERVERS`` set: the tests use that cluster. Otherwise one embedded Tansu
broker (``consumer.devtools.embedded_broker``) is started for the whole session and stopped at the end.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import structlog

from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics, wait_for_broker
from tests.support.broker import FAST_GROUP_CONFIG, TopicFactory

# Fixtures for any test: the Schema Registry double (`registry_double`) and the fault matrix's
# per-scenario table (`fault_matrix`, printed in the terminal summary).
pytest_plugins = ["tests.support.registry_double", "tests.support.fault_matrix"]

_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")


@pytest.fixture(autouse=True)
def _structlog_config_is_per_test() -> Iterator[None]:
    """A test that points the logs at its own stream (capsys, a file) must not leave later
    tests writing to it once it is closed."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    yield
    from tests.support.workers import stop_leftover_workers

    stop_leftover_workers()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of the broker for this session (external or embedded Tansu)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        wait_for_broker(external, timeout_s=30.0)
        yield external
        return
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def topic_factory(kafka_bootstrap: str, request: pytest.FixtureRequest) -> TopicFactory:
    """``new_topic(partitions=4, *, prefix=None, config=None) -> name``.

    Creates a uniquely named topic (test name + uuid) and returns once all its partitions
    have leaders. Topics are not deleted: names never repeat and Tansu's storage is in memory.
    """
    test_name = _TOPIC_UNSAFE.sub("-", request.node.name)[:60].strip("-.") or "test"

    def new_topic(
        partitions: int = 4,
        *,
        prefix: str | None = None,
        config: Mapping[str, str] | None = None,
    ) -> str:
        name = f"{prefix or test_name}.{uuid.uuid4().hex[:12]}"
        create_topics(kafka_bootstrap, {name: partitions}, topic_config=config)
        return name

    return new_topic


@pytest.fixture
def new_topic(topic_factory: TopicFactory) -> str:
    """A fresh 4-partition topic on ``kafka_bootstrap``."""
    return topic_factory(4)


@pytest.fixture
def fast_group_config() -> dict[str, Any]:
    """A fresh copy of :data:`FAST_GROUP_CONFIG` (no bootstrap.servers, no group.id)."""
    return dict(FAST_GROUP_CONFIG)


@pytest.fixture
def consumer_config(kafka_bootstrap: str, fast_group_config: dict[str, Any]) -> dict[str, Any]:
    """``fast_group_config`` plus ``bootstrap.servers`` and a group.id unique to the test."""
    return {
        **fast_group_config,
        "bootstrap.servers": kafka_bootstrap,
        "group.id": f"test-group-{uuid.uuid4().hex[:12]}",
    }
