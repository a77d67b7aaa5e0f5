"""JSON input values: a Voucherify delivery or a bare activity decodes to its Avro twin's
record, and routes to the same results; JSON that is not an activity is a `DecodeError`
with its own reason; fuzzed JSON never raises anything else."""

from __future__ import annotations

import json
import random
import typing
from typing import Any

import pytest

from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, DecodeError
from consumer.pipeline.codec.framing import DecodeReason, detect
from consumer.pipeline.codec.json_input import JSON_FRAMING, is_json
from consumer.pipeline.router import Router
from tests.support.deliveries import KINDS, corpus, text, wrap

REASONS = set(typing.get_args(DecodeReason))
CORPUS = corpus()
SEED = 20261201


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


def _forms(activity: dict[str, Any]) -> dict[str, bytes]:
    """Every JSON form of one activity: bare, and both kinds of delivery, flat and nested."""
    docs: dict[str, Any] = {"bare": activity}
    for kind in KINDS:
        docs[kind] = wrap(activity, kind)
        docs[f"{kind} nested"] = wrap(activity, kind, nested=True)
    styles = {"pretty": True, "compact": False}
    return {f"{name} {style}": text(doc, pretty=p) for name, doc in docs.items() for style, p in styles.items()}


def _results(router: Router, record: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return [(r.stream, r.schema, r.value) for r in router.route(activity_from_record(record))]


def test_every_corpus_payload_in_every_json_form_decodes_to_its_avro_twin(codec: AvroCodec) -> None:
    router = Router()
    checked = 0
    for activity in CORPUS:
        twin_bytes = codec.encode_json(activity)
        twin = codec.decode(twin_bytes)
        twin_results = _results(router, twin)
        assert twin_results, activity["type"]  # every corpus event yields at least one result
        for form, value in _forms(activity).items():
            assert is_json(value) and not is_json(twin_bytes)
            got = codec.decode(value)
            assert got == twin, (activity["type"], form)
            assert _results(router, got) == twin_results, (activity["type"], form)
            assert codec.decode_json(value) == codec.decode_json(twin_bytes), (activity["type"], form)
            checked += 1
    assert checked == len(CORPUS) * 10 and len(CORPUS) >= 30


def test_json_data_is_unchanged_on_the_way_through(codec: AvroCodec) -> None:
    """The JSON form the worker reads back is the corpus activity itself."""
    for activity in CORPUS:
        assert codec.decode_json(text(wrap(activity, "distribution", nested=True), pretty=True)) == activity


@pytest.mark.parametrize("engine", ["fastavro", "cavro"])
def test_both_engines_and_the_confluent_codec_read_json_alike(engine: str) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    if engine == "cavro":
        pytest.importorskip("cavro", reason="cavro has wheels for CPython < 3.13 only")

    registry = SchemaRegistryClient.new_client({"url": f"mock://json-input-{engine}"})
    confluent = AvroCodec(framing="confluent", registry=registry, engine=engine)  # type: ignore[arg-type]
    single = AvroCodec(engine=engine)  # type: ignore[arg-type]
    for activity in CORPUS:
        value = text(wrap(activity, "webhook"), pretty=False)
        assert confluent.decode(value) == single.decode(value) == confluent.decode(confluent.encode_json(activity))


def test_leading_whitespace_is_json_and_neither_avro_magic_is() -> None:
    assert is_json(b' \t\r\n{"a":1}') and is_json(b"{")
    for not_json in (b"", b"\xc3\x01{", b"\x00{", b"[1]", b" [1]", b"\xef\xbb\xbf{}", b"   "):
        assert not is_json(not_json), not_json
    codec = AvroCodec()
    assert detect(codec.encode_json(CORPUS[0])) == "single-object"  # the framings are untouched


_WEBHOOK = wrap(CORPUS[0], "webhook")
NOT_ACTIVITIES: dict[str, tuple[bytes, DecodeReason, str]] = {
    "truncated": (text(CORPUS[0], pretty=False)[:50], "json_malformed", "not JSON"),
    "two values": (b'{"a":1} {"b":2}', "json_malformed", "not JSON"),
    "not UTF-8": (b'{"id": "\xff\xfe"}', "json_malformed", "UTF-8"),
    "too deep": (b"{" + b'"a":[' * 100_000, "json_malformed", "not JSON"),
    "nested too deeply": (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "json_malformed", "deeply"),
    "empty object": (b"{}", "json_not_activity", "'id' must be a string"),
    "a customer, not an activity": (
        json.dumps(CORPUS[0]["data"]["customer"]).encode(),
        "json_not_activity",
        "unknown envelope field",
    ),
    "no created_at": (b'{"id": "evcus_1", "type": "customer.created", "data": {}}', "json_not_activity", "created_at"),
    "bad created_at": (
        json.dumps({**CORPUS[0], "created_at": "yesterday"}).encode(),
        "json_not_activity",
        "ISO-8601",
    ),
    "data not an object": (json.dumps({**CORPUS[0], "data": [1]}).encode(), "json_not_activity", "'data'"),
    "delivery without source": (
        json.dumps({k: v for k, v in _WEBHOOK.items() if k != "source"}).encode(),
        "json_not_activity",
        "missing 'source'",
    ),
    "delivery, event not an object": (
        json.dumps({**_WEBHOOK, "event": "evcus_1"}).encode(),
        "json_not_activity",
        "'event' must be an object",
    ),
    "delivery, event without id": (
        json.dumps({**_WEBHOOK, "event": {**_WEBHOOK["event"], "id": None}}).encode(),
        "json_not_activity",
        "'event.id'",
    ),
    "delivery of a voucher event": (
        json.dumps(
            {**_WEBHOOK, "type": "voucher.updated", "event": {**_WEBHOOK["event"], "type": "voucher.updated"}}
        ).encode(),
        "json_not_activity",
        "voucher.updated, not a customer event",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_ACTIVITIES))
def test_json_that_is_not_an_activity_has_its_own_reason(codec: AvroCodec, case: str) -> None:
    value, reason, says = NOT_ACTIVITIES[case]
    with pytest.raises(DecodeError) as exc:
        codec.decode(value)
    assert (exc.value.reason, exc.value.framing) == (reason, JSON_FRAMING)
    assert says in str(exc.value), str(exc.value)


def test_the_reason_never_carries_personal_data(codec: AvroCodec) -> None:
    customer = CORPUS[0]["data"]["customer"]
    doc = {**CORPUS[0], "created_at": customer["email"], "phone": "+44 20 7946 0958"}
    with pytest.raises(DecodeError) as exc:
        codec.decode(json.dumps(doc).encode())
    assert exc.value.reason == "json_not_activity"
    assert customer["email"] not in str(exc.value) and "7946" not in str(exc.value), str(exc.value)


def _json_mutations(rng: random.Random, n: int) -> list[bytes]:
    seeds = [text(a, pretty=rng.random() < 0.5) for a in CORPUS]
    seeds += [text(wrap(a, rng.choice(KINDS), nested=rng.random() < 0.5), pretty=False) for a in CORPUS]
    tokens = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"null", b"1e999", b"-0", b"9" * 30, b"\\u0000", b"\xff"]
    out = []
    for _ in range(n):
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(1, len(b))  # keep the leading "{": these stay JSON input
            op = rng.random()
            if op < 0.3:
                b[i] = rng.randrange(256)
            elif op < 0.6:
                b[i:i] = rng.choice(tokens)
            elif op < 0.8:
                del b[i : i + rng.randint(1, 40)]
            else:
                del b[i:]
        out.append(bytes(b))
    return out


def test_fuzzed_json_is_forwarded_or_dead_lettered_never_a_crash(codec: AvroCodec) -> None:
    rng = random.Random(SEED)
    router = Router()
    outcomes: dict[str, int] = {}
    for value in _json_mutations(rng, 3_000):
        try:
            record = codec.decode(value)
        except DecodeError as exc:
            assert exc.reason in REASONS and exc.framing == JSON_FRAMING, exc
            outcome: str = exc.reason
        else:
            router.route(activity_from_record(record))
            outcome = "forwarded"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # Mutations reach both reasons and the forwarded path (some edits only touch a string's text).
    assert {"forwarded", "json_malformed", "json_not_activity"} <= set(outcomes), outcomes


def test_the_cli_readers_name_json_values() -> None:
    """`dlq inspect` and `tail` read JSON values as the worker does (not as a bad magic byte)."""
    from consumer.cli.dlq_inspect import summary
    from consumer.cli.dlq_read import DeadLetter
    from consumer.cli.tail import ValueDecoder
    from consumer.contract import ENVELOPE

    codec = AvroCodec()
    good = text(wrap(CORPUS[0], "webhook"), pretty=True)
    bad = json.dumps(CORPUS[0]["data"]["customer"]).encode()
    seen = summary(DeadLetter(0, 0, None, good, [], 0), codec)
    assert (seen["framing"], seen["decodes"], seen["id"]) == (JSON_FRAMING, True, CORPUS[0]["id"])
    seen = summary(DeadLetter(0, 1, None, bad, [], 0), codec)
    assert (seen["framing"], seen["decodes"], seen["error"]) == (JSON_FRAMING, False, "json_not_activity")
    assert ValueDecoder(None).decode(good) == (ENVELOPE, CORPUS[0])
