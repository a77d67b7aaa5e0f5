"""fastavro and cavro must agree: the same decoded record (types and key order included) or the
same `DecodeError`, and byte-identical result records, on every input.

Inputs: the corpus and the seed fixtures in both framings, the property tests' strategies,
25,000 seeded mutations of real events, and the evolution fixtures (older and newer writers, an
unknown data branch). Each test also checks that cavro itself decoded a good share of its inputs,
so that agreement cannot come from fastavro answering everything.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, DecodeError, EncodeError
from consumer.pipeline.codec.engines import CavroDecoder
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.router import Router
from tests.support.activity_strategies import SETTINGS, activities, free_form
from tests.support.conformance import corpus_files, load, mock_registry, seed_fixture_files
from tests.support.schema_variants import (
    ACTIVITY,
    TELEPORTED,
    WITH_SOURCE,
    Variant,
    field_named,
    newer_envelope,
    older_envelope,
    record_named,
)

pytest.importorskip("cavro", reason="cavro has wheels for CPython < 3.13 only; fastavro is then the only engine")

MUTATIONS = 25_000
EVENTS = [load(p) for p in (*corpus_files(), *seed_fixture_files())]


class Pair:
    """One codec per engine, reading the same framing and writers."""

    def __init__(self, make: Callable[[str], AvroCodec]) -> None:
        self.fast = make("fastavro")
        self.cavro = make("cavro")
        assert (self.fast.engine, self.cavro.engine) == ("fastavro", "cavro")
        self.by_cavro = 0  # payloads cavro decoded itself (no fallback to fastavro)

    def check(self, payload: bytes) -> Any:
        """Both engines' outcome for `payload`; fails on any difference. Returns the outcome."""
        a, b = outcome(self.fast, payload), outcome(self.cavro, payload)
        same(a, b)
        if a[0] == "record":
            self.by_cavro += cavro_alone(self.cavro, payload)
            same(json_of(self.fast, payload), json_of(self.cavro, payload))
        return a


def outcome(codec: AvroCodec, payload: bytes) -> tuple[Any, ...]:
    try:
        return ("record", codec.decode(payload))
    except DecodeError as exc:
        return ("error", exc.reason, exc.detail, exc.framing)


def json_of(codec: AvroCodec, payload: bytes) -> tuple[Any, ...]:
    try:
        return ("json", codec.decode_json(payload))
    except DecodeError as exc:
        return ("error", exc.reason, exc.detail, exc.framing)


def cavro_alone(codec: AvroCodec, payload: bytes) -> int:
    """1 when cavro read `payload` without handing it to fastavro."""
    writer, offset, _ = codec.writer_of(payload)
    decoder = codec._cavro.get(id(writer))
    return int(isinstance(decoder, CavroDecoder) and decoder.decode(payload, offset) is not None)


def same(a: Any, b: Any, where: str = "$") -> None:
    """Equal with the same types everywhere, dict keys in the same order, datetimes in the same zone."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, datetime):
        assert (a, a.tzinfo) == (b, b.tzinfo), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def single_object_pair() -> Pair:
    return Pair(lambda engine: AvroCodec(engine=engine))


def confluent_pair() -> Pair:
    registry = mock_registry()
    return Pair(lambda engine: AvroCodec(framing="confluent", registry=registry, engine=engine))


SINGLE = single_object_pair()
CONFLUENT = confluent_pair()
ROUTER = Router()
FAST_RESULTS = ResultEncoder(SINGLE.fast.store, engine="fastavro")
CAVRO_RESULTS = ResultEncoder(SINGLE.fast.store, engine="cavro")


def check_results(record: dict[str, Any]) -> int:
    """Both engines write each of the event's results to the same bytes; returns how many."""
    results = ROUTER.route(activity_from_record(record))
    for r in results:
        assert CAVRO_RESULTS.encode(r.schema, r.value) == FAST_RESULTS.encode(r.schema, r.value), r.schema
    return len(results)


def framed_corpus() -> Iterator[tuple[Pair, bytes]]:
    for pair in (SINGLE, CONFLUENT):
        for event in EVENTS:
            yield pair, pair.fast.encode_json(event)


# -- the corpus and the seed fixtures ---------------------------------------------------------
def test_corpus_and_seed_fixtures_in_both_framings() -> None:
    results = 0
    n = 0
    before = SINGLE.by_cavro + CONFLUENT.by_cavro
    for pair, payload in framed_corpus():
        kind, record = pair.check(payload)
        assert kind == "record"
        results += check_results(record)
        n += 1
    assert n == 2 * len(EVENTS) and len(EVENTS) >= 40
    assert SINGLE.by_cavro + CONFLUENT.by_cavro - before == n, "cavro must read every valid event itself"
    assert results >= n


# -- the property tests' strategies --------------------------------------------------------------
@SETTINGS
@given(activities(), st.data())
def test_generated_activities_and_their_corruptions(case: tuple[dict[str, Any], int], data: st.DataObject) -> None:
    activity, _ = case
    for pair in (SINGLE, CONFLUENT):
        try:
            payload = pair.fast.encode_json(activity)
        except EncodeError:
            return
        kind, record = pair.check(payload)[:2]
        assert kind == "record"
        check_results(record)
        body = bytearray(payload)
        header = 10 if pair is SINGLE else 5
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(header, max(header, len(body) - 1)))
            op = data.draw(st.sampled_from(["flip", "drop", "insert", "cut", "extend"]))
            if op == "flip" and i < len(body):
                body[i] ^= data.draw(st.integers(1, 255))
            elif op == "drop" and i < len(body):
                del body[i]
            elif op == "insert":
                body.insert(i, data.draw(st.integers(0, 255)))
            elif op == "cut":
                del body[i:]
            else:
                body += data.draw(st.binary(min_size=1, max_size=8))
        pair.check(bytes(body))


@SETTINGS
@given(free_form, st.sampled_from(EVENTS))
def test_generated_metadata(metadata: dict[str, Any], base: dict[str, Any]) -> None:
    activity = copy.deepcopy(base)
    customer = activity["data"].get("customer")
    (customer if isinstance(customer, dict) else activity["data"])["metadata"] = metadata
    kind, record = SINGLE.check(SINGLE.fast.encode_json(activity))[:2]
    assert kind == "record"
    check_results(record)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_after_each_header(rest: bytes) -> None:
    SINGLE.check(SINGLE.fast.single_object.header + rest)
    SINGLE.check(rest)
    confluent_header = CONFLUENT.fast.encode_json(EVENTS[0])[:5]
    CONFLUENT.check(confluent_header + rest)


# -- seeded mutations ---------------------------------------------------------------------------
def mutate(rng: random.Random, payload: bytes, header: int) -> bytes:
    body = bytearray(payload)
    op = rng.randrange(9)
    if op == 0:  # flip bits in 1-4 bytes of the body
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(header, len(body))] ^= rng.randint(1, 255)
    elif op in (7, 8):  # flip low bits of 1-3 ASCII bytes: text, lengths, indexes and numbers change
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(header, len(body))
            if body[i] < 0x80:
                body[i] ^= rng.randint(1, 0x7F)
    elif op == 1:  # truncate
        del body[rng.randrange(header, len(body)) :]
    elif op == 2:  # extend (trailing bytes)
        body += rng.randbytes(rng.randint(1, 16))
    elif op == 3:  # drop or insert a byte
        i = rng.randrange(header, len(body))
        if rng.random() < 0.5:
            del body[i]
        else:
            body.insert(i, rng.randrange(256))
    elif op == 4:  # random bytes after a valid header
        body = body[:header] + bytearray(rng.randbytes(rng.randint(0, 64)))
    elif op == 5:  # a varint length or count made large
        i = rng.randrange(header, len(body))
        body[i : i + 1] = bytes([0xFF] * rng.randint(1, 9) + [rng.randrange(0x80)])
    else:  # random bytes, framing included
        body = bytearray(rng.randbytes(rng.randint(0, 40)))
    return bytes(body)


def test_seeded_mutations() -> None:
    rng = random.Random(20261127)
    bases = [(pair, payload, 10 if pair is SINGLE else 5) for pair, payload in framed_corpus()]
    before = SINGLE.by_cavro + CONFLUENT.by_cavro
    records = errors = 0
    for _ in range(MUTATIONS):
        pair, payload, header = rng.choice(bases)
        if pair.check(mutate(rng, payload, header))[0] == "record":
            records += 1
        else:
            errors += 1
    by_cavro = SINGLE.by_cavro + CONFLUENT.by_cavro - before
    assert records + errors == MUTATIONS
    # Both outcomes are well represented, and cavro read most of the inputs that decode.
    assert records > MUTATIONS // 20 and errors > MUTATIONS // 3, (records, errors)
    assert by_cavro > records // 2, (by_cavro, records)


# -- evolution fixtures ----------------------------------------------------------------------
def newer_fields_only() -> dict[str, Any]:
    """A newer writer that only adds a field (no new union branch): cavro resolves it itself."""
    env = newer_envelope()
    data = field_named(env, "data")
    data["type"] = [b for b in data["type"] if not (isinstance(b, dict) and b.get("name") == TELEPORTED)]
    assert record_named(env, "voucherify.activity.EventCustomerSegmentEntered")["fields"][2]["name"] == "priority"
    return env


def evolution_pairs(schema: dict[str, Any], framing: str) -> tuple[Variant, Pair]:
    variant = Variant(schema, framing)
    reader = variant.reader
    if framing == "single-object":
        pair = Pair(lambda engine: AvroCodec(known_writers=(schema,), engine=engine))
    else:
        pair = Pair(lambda engine: AvroCodec(framing="confluent", registry=reader.confluent.registry, engine=engine))  # type: ignore[union-attr]
    return variant, pair


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
def test_evolution_fixtures(framing: str) -> None:
    rng = random.Random(7)
    cases: list[tuple[str, dict[str, Any], list[dict[str, Any]], bool]] = []

    older = older_envelope()
    rec = AvroCodec().converter.to_avro(WITH_SOURCE)
    rec.pop("event_source")
    rec["data"][1]["segment"][1].pop("name")
    cases.append(("older writer", older, [rec], True))

    newer = newer_envelope()
    typed = AvroCodec().converter.to_avro(WITH_SOURCE)
    typed["data"][1]["priority"] = 7
    teleported = {
        "id": "evcus_future",
        "type": "customer.teleported",
        "data": (TELEPORTED, {"planet": "Mars", "distance_km": ("double", 1.5), "tags": ["a"], "note": None}),
        "created_at": 1715595841084,
        "group_id": "v-1",
    }
    # A new data branch: fastavro reads this writer (see engines.cavro_decoder).
    cases.append(("newer writer, new branch", newer, [typed, teleported], False))

    fields_only = newer_fields_only()
    typed2 = AvroCodec().converter.to_avro(ACTIVITY)
    typed2["data"][1]["priority"] = 3
    cases.append(("newer writer, added field", fields_only, [typed2], True))

    for name, schema, recs, cavro_reads in cases:
        variant, pair = evolution_pairs(schema, framing)
        for record in recs:
            payload = variant.write(record)
            assert pair.check(payload)[0] == "record", name
            assert cavro_alone(pair.cavro, payload) == int(cavro_reads), name
            check_results(pair.fast.decode(payload))
            header = 10 if framing == "single-object" else 5
            for _ in range(300):
                pair.check(mutate(rng, payload, header))
