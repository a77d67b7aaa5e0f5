"""The Avro engine setting: `--avro-engine fastavro` really runs fastavro, `auto` picks cavro where
it imports, and the worker names its engine in a metric."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from consumer.cli.main import _parser
from consumer.config import ConfigError, build
from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, avro_codec, engines
from consumer.pipeline.codec.results import RESULTS_NAMESPACE
from consumer.runtime.worker import Worker
from tests.support.conformance import EXAMPLES, load

EVENT = load(EXAMPLES / "customer.created.json")


class Spy:
    """Counts calls into cavro's decoder and encoder factories and lets them go through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoders = self.encoders = 0
        real_decoder, real_encoder = avro_codec.cavro_decoder, engines.CavroEncoder

        def decoder(*a: Any) -> Any:
            self.decoders += 1
            return real_decoder(*a)

        def encoder(*a: Any) -> Any:
            self.encoders += 1
            return real_encoder(*a)

        monkeypatch.setattr(avro_codec, "cavro_decoder", decoder)
        monkeypatch.setattr("consumer.pipeline.codec.results.CavroEncoder", encoder)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    return Spy(monkeypatch)


def worker_for(argv: list[str], environ: dict[str, str] | None = None) -> Iterator[Worker]:
    args = _parser().parse_args(["run", "--topics", "customer-activity", "--metrics-port", "0", *argv])
    worker = Worker(build(vars(args), environ or {}))
    try:
        yield worker
    finally:
        worker.source.consumer.close()


def engine_gauge(worker: Worker) -> dict[str, float]:
    return {
        s.labels["engine"]: s.value
        for m in worker.registry.collect()
        if m.name == "activity_consumer_avro_engine_info"
        for s in m.samples
    }


def run_one_event(worker: Worker) -> None:
    record = worker.codec.decode(AvroCodec(engine="fastavro").encode_json(EVENT))
    assert record["id"] == EVENT["id"]
    for result in worker.router.route(activity_from_record(record)):
        worker.sink.encoder.encode(result.schema, result.value)


def test_flag_fastavro_runs_fastavro_only(spy: Spy) -> None:
    for worker in worker_for(["--avro-engine", "fastavro"]):
        assert worker.settings.avro_engine == "fastavro"
        assert (worker.codec.engine, worker.sink.encoder.engine) == ("fastavro", "fastavro")
        assert engine_gauge(worker) == {"fastavro": 1.0}
        run_one_event(worker)
    assert (spy.decoders, spy.encoders) == (0, 0), "fastavro must not touch cavro"


def test_env_var_picks_the_engine(spy: Spy) -> None:
    for worker in worker_for([], {"ACTIVITY_AVRO_ENGINE": "fastavro"}):
        assert worker.codec.engine == "fastavro"
        run_one_event(worker)
    assert spy.decoders == 0


def test_flag_cavro_runs_cavro(spy: Spy) -> None:
    pytest.importorskip("cavro")
    for worker in worker_for(["--avro-engine", "cavro"]):
        assert (worker.codec.engine, worker.sink.encoder.engine) == ("cavro", "cavro")
        assert engine_gauge(worker) == {"cavro": 1.0}
        run_one_event(worker)
    kinds = [name for name in AvroCodec().store.files if name.startswith(RESULTS_NAMESPACE + ".")]
    assert spy.decoders == 1 and spy.encoders == len(kinds) > 0


def test_auto_is_cavro_where_it_imports_else_fastavro(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "cavro" if engines.cavro_module() is not None else "fastavro"
    assert engines.resolve("auto") == expected
    monkeypatch.setattr(engines, "cavro_module", lambda: None)
    assert engines.resolve("auto") == "fastavro"
    assert AvroCodec().engine == "fastavro"
    with pytest.raises(engines.EngineUnavailable):
        engines.resolve("cavro")


def test_cavro_setting_is_refused_where_cavro_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cavro" else real(name, *a))
    with pytest.raises(ConfigError, match="--avro-engine 'cavro': cavro is not installed"):
        build({"topics": ("t",), "avro_engine": "cavro"}, {})
    with pytest.raises(ConfigError, match="use one of auto, fastavro, cavro"):
        build({"topics": ("t",)}, {"ACTIVITY_AVRO_ENGINE": "avro"})
