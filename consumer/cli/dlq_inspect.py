"""`dlq inspect`: what is in a dead-letter topic, counted by reason, source topic, type and
hour, with a sample of records shown as headers plus a summary that holds no personal data."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from consumer.cli.dlq_read import DeadLetter, Filters, Scan, iso
from consumer.contract import (
    DLQ_PREFIX,
    H_DLQ_ERROR_CLASS,
    H_DLQ_REASON,
    H_DLQ_REASON_CODE,
    H_DLQ_REPLAY_COUNT,
    H_DLQ_SOURCE_OFFSET,
    H_DLQ_SOURCE_PARTITION,
    H_DLQ_SOURCE_TOPIC,
    H_DLQ_VALUE_OMITTED,
    TRUSTED_HEADERS,
)
from consumer.pii import mask_text, scrub_item_for_log
from consumer.pipeline.codec import AvroCodec, DecodeError
from consumer.pipeline.codec.json_input import JSON_FRAMING, is_json

MAX_HEADER_TEXT = 200


@dataclass
class Report:
    topic: str
    scanned: int = 0
    matched: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_error_class: Counter[str] = field(default_factory=Counter)
    by_source_topic: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_hour: Counter[str] = field(default_factory=Counter)
    by_replay_count: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)

    def add(self, d: DeadLetter) -> None:
        self.matched += 1
        self.by_reason[d.reason_code] += 1
        self.by_error_class[d.error_class] += 1
        self.by_source_topic[d.source_topic or "unknown"] += 1
        self.by_type[d.activity_type] += 1
        self.by_hour[iso(d.failed_at_ms)[:13] + ":00Z"] += 1
        self.by_replay_count[str(d.replay_count)] += 1

    def as_json(self) -> dict[str, Any]:
        def ranked(c: Counter[str]) -> dict[str, int]:
            return dict(c.most_common())

        return {
            "topic": self.topic,
            "scanned": self.scanned,
            "matched": self.matched,
            "by_reason": ranked(self.by_reason),
            "by_error_class": ranked(self.by_error_class),
            "by_source_topic": ranked(self.by_source_topic),
            "by_type": ranked(self.by_type),
            "by_hour": dict(sorted(self.by_hour.items())),
            "by_replay_count": dict(sorted(self.by_replay_count.items())),
            "sample": self.sample,
        }


def safe_headers(d: DeadLetter) -> dict[str, str]:
    """Headers as text: the sink's own kept exact; any other masked by the PII policy."""
    out: dict[str, str] = {}
    for k, v in d.headers:
        text = "" if v is None else v.decode("utf-8", "replace")
        if k in TRUSTED_HEADERS:
            out[k] = text[:MAX_HEADER_TEXT]
        else:
            out[k] = str(scrub_item_for_log(k, text))[:MAX_HEADER_TEXT]
    return out


def summary(d: DeadLetter, codec: AvroCodec) -> dict[str, Any]:
    """What the value is, never what personal data it holds: framing, size, and for a decodable
    event its id, type, time, data record and the names of the data fields it carries."""
    value = d.value
    out: dict[str, Any] = {"bytes": len(value) if value is not None else None}
    if d.key is not None:
        out["key"] = mask_text(d.key.decode("utf-8", "replace"))
    if value is None:
        out["decodes"] = False
        out["error"] = "no value (" + (d.header(H_DLQ_VALUE_OMITTED) or "tombstone") + ")"
        return out
    try:
        out["framing"] = JSON_FRAMING if is_json(value) else codec.writer_of(value)[2]
        record = codec.decode(value)
    except DecodeError as exc:
        out["decodes"] = False
        out["error"] = exc.reason
        return out
    data = record.get("data")
    out.update(
        decodes=True,
        id=record.get("id"),
        type=record.get("type"),
        created_at=_when(record.get("created_at")),
        data_record=codec.branch_of(record).rpartition(".")[2],
        data_fields=sorted(k for k, v in data.items() if v is not None and not k.startswith("_"))
        if isinstance(data, dict)
        else [],
    )
    return out


def _when(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return iso(value) if isinstance(value, int) else None


def inspect(scan: Scan, filters: Filters, codec: AvroCodec, sample_size: int) -> Report:
    report = Report(scan.topic)
    for batch in scan.batches():
        for d in batch:
            report.scanned += 1
            if not filters.matches(d) or filters.after_until(d):
                continue
            report.add(d)
            if len(report.sample) < sample_size:
                report.sample.append(
                    {
                        "partition": d.partition,
                        "offset": d.offset,
                        "failed_at": iso(d.failed_at_ms),
                        "headers": safe_headers(d),
                        "summary": summary(d, codec),
                    }
                )
    return report


def _table(title: str, counts: dict[str, int], out: IO[str]) -> None:
    if not counts:
        return
    width = max(len(title), *(len(k) for k in counts))
    out.write(f"\n{title:<{width}}  {'count':>7}\n")
    for k, n in counts.items():
        out.write(f"{k:<{width}}  {n:>7}\n")


def write_table(report: Report, out: IO[str]) -> None:
    j = report.as_json()
    out.write(f"dead letters in {report.topic}: {report.matched} matching of {report.scanned} scanned\n")
    _table("reason", j["by_reason"], out)
    _table("error class", j["by_error_class"], out)
    _table("source topic", j["by_source_topic"], out)
    _table("type", j["by_type"], out)
    _table("hour (UTC)", j["by_hour"], out)
    _table("replays so far", j["by_replay_count"], out)
    if report.sample:
        out.write(f"\nsample ({len(report.sample)} of {report.matched})\n")
    for s in report.sample:
        h = s["headers"]
        out.write(f"- [{s['partition']}]@{s['offset']}  failed {s['failed_at']}\n")
        code, error_class = h.get(H_DLQ_REASON_CODE, "?"), h.get(H_DLQ_ERROR_CLASS, "?")
        out.write(f"    reason:  {code} ({error_class}) {h.get(H_DLQ_REASON, '')}\n")
        topic, part, off = (h.get(k, "?") for k in (H_DLQ_SOURCE_TOPIC, H_DLQ_SOURCE_PARTITION, H_DLQ_SOURCE_OFFSET))
        src = f"{topic}[{part}]@{off}"
        out.write(f"    source:  {src}  replays {h.get(H_DLQ_REPLAY_COUNT, '0')}\n")
        out.write(f"    value:   {json.dumps(s['summary'], ensure_ascii=False)}\n")
        others = {k: v for k, v in h.items() if not k.startswith(DLQ_PREFIX)}
        if others:
            out.write(f"    headers: {json.dumps(others, ensure_ascii=False)}\n")
