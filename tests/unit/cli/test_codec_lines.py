"""`consumer.cli.codec_lines`: JSON Lines <-> base64 framed Avro, bad lines reported by number."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest

from consumer.cli.codec_lines import decode_lines, encode_lines
from consumer.devtools.corpus import EXAMPLES
from consumer.pipeline.codec import AvroCodec

REPO = Path(__file__).resolve().parents[3]
ACTIVITIES = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


def run(fn: Any, codec: AvroCodec, text: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    rc = fn(codec, io.StringIO(text), out, err)
    return rc, out.getvalue().splitlines(), err.getvalue()


def jsonl(items: list[Any]) -> str:
    return "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in items)


def test_encode_then_decode_is_the_identity(codec: AvroCodec) -> None:
    rc, b64, err = run(encode_lines, codec, jsonl(ACTIVITIES))
    assert (rc, err) == (0, "")
    assert len(b64) == len(ACTIVITIES) == 32
    for line in b64:
        assert base64.b64decode(line, validate=True)[:2] == b"\xc3\x01"
    rc, lines, err = run(decode_lines, codec, "\n".join(b64) + "\n")
    assert (rc, err) == (0, "")
    assert [json.loads(line) for line in lines] == ACTIVITIES


def test_blank_lines_are_skipped(codec: AvroCodec) -> None:
    rc, b64, err = run(encode_lines, codec, "\n" + jsonl(ACTIVITIES[:2]) + "   \n\n")
    assert (rc, err, len(b64)) == (0, "", 2)


def test_bad_json_lines_are_reported_and_the_good_ones_written(codec: AvroCodec) -> None:
    no_id = {k: v for k, v in ACTIVITIES[1].items() if k != "id"}
    bad_time = {**ACTIVITIES[2], "created_at": "not a time"}
    text = "\n".join(
        [
            json.dumps(ACTIVITIES[0]),  # 1 good
            "{not json",  # 2
            json.dumps(no_id),  # 3
            json.dumps(bad_time),  # 4
            json.dumps(ACTIVITIES[3]),  # 5 good
        ]
    )
    rc, b64, err = run(encode_lines, codec, text)
    assert rc != 0
    assert len(b64) == 2
    assert codec.decode_json(base64.b64decode(b64[0])) == ACTIVITIES[0]
    assert codec.decode_json(base64.b64decode(b64[1])) == ACTIVITIES[3]
    messages = err.splitlines()
    assert any(m.startswith("line 2:") and "JSON" in m for m in messages), err
    assert any(m.startswith("line 3:") and "'id'" in m for m in messages), err
    assert any(m.startswith("line 4:") and "created_at" in m for m in messages), err
    assert not any(m.startswith(("line 1:", "line 5:")) for m in messages)


def test_bad_base64_lines_are_reported_and_the_good_ones_written(codec: AvroCodec) -> None:
    good = [base64.b64encode(codec.encode_json(a)).decode() for a in ACTIVITIES[:2]]
    truncated = base64.b64encode(codec.encode_json(ACTIVITIES[2])[:-7]).decode()
    text = "\n".join([good[0], "%%% not base64 %%%", truncated, "AAAA", good[1]])
    rc, lines, err = run(decode_lines, codec, text)
    assert rc != 0
    assert [json.loads(line) for line in lines] == ACTIVITIES[:2]
    messages = err.splitlines()
    assert any(m.startswith("line 2:") and "base64" in m for m in messages), err
    assert any(m.startswith("line 3:") and ("truncated" in m or "malformed" in m) for m in messages), err
    assert any(m.startswith("line 4:") for m in messages), err
