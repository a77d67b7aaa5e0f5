"""`activity-consumer codec encode|decode`: JSON Lines <-> base64 framed Avro, one per line."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Callable, Iterable
from typing import IO

from consumer.pipeline.codec.avro_codec import AvroCodec
from consumer.pipeline.codec.framing import DecodeError
from consumer.pipeline.codec.jsonavro import EncodeError


def _each_line(lines: Iterable[str], out: IO[str], err: IO[str], convert: Callable[[str], str]) -> int:
    """Convert every non-blank line; report bad ones by number and carry on."""
    bad = 0
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            out.write(convert(text) + "\n")
        except (EncodeError, DecodeError) as exc:
            bad += 1
            err.write(f"line {number}: {exc}\n")
    out.flush()
    if bad:
        err.write(f"{bad} bad line(s); the good lines were written\n")
    return 1 if bad else 0


def encode_lines(codec: AvroCodec, lines: Iterable[str], out: IO[str], err: IO[str]) -> int:
    def convert(text: str) -> str:
        try:
            activity = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EncodeError(f"not JSON: {exc}") from None
        return base64.b64encode(codec.encode_json(activity)).decode("ascii")

    return _each_line(lines, out, err, convert)


def decode_lines(codec: AvroCodec, lines: Iterable[str], out: IO[str], err: IO[str]) -> int:
    def convert(text: str) -> str:
        try:
            payload = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise DecodeError("malformed", "not base64") from None
        return json.dumps(codec.decode_json(payload), ensure_ascii=False)

    return _each_line(lines, out, err, convert)


def main_encode(codec: AvroCodec) -> int:
    return encode_lines(codec, sys.stdin, sys.stdout, sys.stderr)


def main_decode(codec: AvroCodec) -> int:
    return decode_lines(codec, sys.stdin, sys.stdout, sys.stderr)
