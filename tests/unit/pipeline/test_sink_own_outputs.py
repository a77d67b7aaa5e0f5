"""`Sink.is_own_output` names this worker's outputs from its settings (issue 10, item 5)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from consumer.config import Settings
from consumer.contract import STREAMS
from consumer.pipeline.codec import SchemaStore
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.sink import Sink

BASE = Settings(bootstrap_servers="127.0.0.1:1", pattern="^ca\\..*")


def _sink(**changes: str) -> Iterator[Sink]:
    sink = Sink(replace(BASE, **changes), ResultEncoder(SchemaStore()), STREAMS)
    yield sink
    sink.producer.flush(0)


@pytest.mark.parametrize(
    ("changes", "own", "not_own"),
    [
        ({}, ["ca.x.lifecycle", "ca.x.dlq", "anything.other"], ["ca.x", "ca.lifecycle-archive", "ca.out-lifecycle"]),
        (
            {"output_prefix": "ca.out-", "dlq_topic": "ca.dead"},
            ["ca.out-lifecycle", "ca.out-other", "ca.dead", "ca.x.gateway.dlq"],
            # the default suffixes are not ours once the names are configured
            ["ca.x.lifecycle", "ca.x.dlq", "ca.out-unknown", "ca.dead.2", "ca.x"],
        ),
        ({"dlq_topic": "ca.dead"}, ["ca.dead", "ca.x.lifecycle", "ca.x.gateway.dlq"], ["ca.x.dlq", "ca.x"]),
        ({"output_prefix": "results."}, ["results.lifecycle", "ca.x.dlq"], ["ca.x.lifecycle", "results.x"]),
    ],
)
def test_own_outputs_follow_the_configured_names(changes: dict[str, str], own: list[str], not_own: list[str]) -> None:
    for sink in _sink(**changes):
        assert [t for t in own if not sink.is_own_output(t)] == []
        assert [t for t in not_own if sink.is_own_output(t)] == []
        # What the worker writes is always recognised.
        assert sink.is_own_output(sink.settings.dead_letter_topic("ca.x"))
        assert all(sink.is_own_output(sink.topic_for("ca.x", s)) for s in STREAMS)
