"""`activity-consumer codec encode | codec decode` as a user runs it: a subprocess."""

from __future__ import annotations

import base64
import json

import pytest

from consumer.pipeline.codec import AvroCodec
from tests.support.conformance import corpus_files, identical, load, run_cli, seed_fixture_files

ACTIVITIES = [load(p) for p in [*corpus_files(), *seed_fixture_files()]]


def jsonl(items: list[object]) -> str:
    return "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in items)


@pytest.fixture(scope="module")
def encoded() -> list[str]:
    done = run_cli("codec", "encode", stdin=jsonl(ACTIVITIES))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_encode_then_decode_is_the_identity(encoded: list[str]) -> None:
    assert len(encoded) == len(ACTIVITIES) >= 32
    for line in encoded:
        assert base64.b64decode(line, validate=True)[:2] == b"\xc3\x01"
    done = run_cli("codec", "decode", stdin="\n".join(encoded) + "\n")
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == len(ACTIVITIES)
    for got, want in zip(out, ACTIVITIES, strict=True):
        identical(got, want)


def test_cli_output_is_what_the_library_decodes(encoded: list[str]) -> None:
    codec = AvroCodec()
    for line, want in zip(encoded, ACTIVITIES, strict=True):
        identical(codec.decode_json(base64.b64decode(line)), want)


def test_encode_reports_bad_lines_and_writes_the_good_ones() -> None:
    good = ACTIVITIES[:2]
    no_id = {k: v for k, v in ACTIVITIES[2].items() if k != "id"}
    bad_time = {**ACTIVITIES[3], "created_at": "next tuesday"}
    stdin = "\n".join(
        [json.dumps(good[0]), "this is not json", json.dumps(no_id), json.dumps(bad_time), json.dumps(good[1])]
    )
    done = run_cli("codec", "encode", stdin=stdin)
    assert done.returncode != 0
    out = done.stdout.splitlines()
    assert len(out) == 2
    codec = AvroCodec()
    assert [codec.decode_json(base64.b64decode(x)) for x in out] == good
    err = done.stderr
    assert "Traceback" not in err
    lines = err.splitlines()
    assert any("line 2" in m and "JSON" in m for m in lines), err
    assert any("line 3" in m and "id" in m for m in lines), err
    assert any("line 4" in m and "created_at" in m for m in lines), err
    assert not any("line 1:" in m or "line 5:" in m for m in lines), err


def test_decode_reports_bad_lines_and_writes_the_good_ones(encoded: list[str]) -> None:
    truncated = base64.b64encode(base64.b64decode(encoded[2])[:-5]).decode()
    stdin = "\n".join([encoded[0], "@@not base64@@", truncated, encoded[1]]) + "\n"
    done = run_cli("codec", "decode", stdin=stdin)
    assert done.returncode != 0
    assert [json.loads(x) for x in done.stdout.splitlines()] == ACTIVITIES[:2]
    err = done.stderr
    assert "Traceback" not in err
    lines = err.splitlines()
    assert any("line 2" in m and "base64" in m for m in lines), err
    assert any("line 3" in m and ("truncated" in m or "malformed" in m) for m in lines), err


def test_confluent_framing_without_a_registry_is_refused() -> None:
    done = run_cli("codec", "encode", "--framing", "confluent", stdin=jsonl(ACTIVITIES[:1]))
    assert done.returncode != 0
    assert "registry" in done.stderr
    assert done.stdout == ""


def _broken_json_text_event() -> str:
    """A well-framed event whose GenericActivityData carries text that is not JSON."""
    import io

    from fastavro import schemaless_writer

    codec = AvroCodec()
    record = {
        "id": "evcus_1",
        "type": "customer.teleported",
        "data": ("voucherify.activity.GenericActivityData", {"json": "{not json"}),
        "created_at": 0,
    }
    buf = io.BytesIO()
    schemaless_writer(buf, codec.current.parsed, record)
    return base64.b64encode(codec.single_object.frame(buf.getvalue())).decode()


def test_decode_reports_an_event_with_broken_json_text(encoded: list[str]) -> None:
    stdin = "\n".join([encoded[0], _broken_json_text_event(), encoded[1]]) + "\n"
    done = run_cli("codec", "decode", stdin=stdin)
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    assert done.returncode != 0
    assert [json.loads(x) for x in done.stdout.splitlines()] == ACTIVITIES[:2]
    assert any("line 2" in m for m in done.stderr.splitlines()), done.stderr


def test_encode_reports_a_number_too_big_for_a_typed_field() -> None:
    big = json.loads(json.dumps(load(corpus_files()[0])))
    big["data"]["customer"]["loyalty"] = {"points": 2**70}
    stdin = "\n".join([json.dumps(ACTIVITIES[0]), json.dumps(big), json.dumps(ACTIVITIES[1])])
    done = run_cli("codec", "encode", stdin=stdin)
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    out = done.stdout.splitlines()
    assert len(out) in (2, 3)  # the big number is either kept (3 lines) or reported
    if len(out) == 2:
        assert done.returncode != 0
        assert any("line 2" in m for m in done.stderr.splitlines()), done.stderr
