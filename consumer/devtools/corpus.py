"""Voucherify's reference data, and example events for the tools that need realistic traffic
(the demo, bench/, the tests).

The data ships inside the package (`consumer/devtools/data/voucherify/`, in the wheel too):
`EXAMPLES`, the 32 payloads of Voucherify's webhook documentation, and `OPENAPI`, the facts of
its OpenAPI description of `CustomerActivity` (`make schemas` generates `avro/` from it). Every
reader names them through this module; nothing reads a folder outside the checkout.
`templates()` gives one event per catalogue type at least: the examples, then the seed's and
today's fixtures of the checkout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from consumer.catalogue import KNOWN_TYPES, canonical

REPO: Final = Path(__file__).resolve().parents[2]
VOUCHERIFY: Final = Path(__file__).resolve().parent / "data" / "voucherify"
EXAMPLES: Final = VOUCHERIFY / "examples"
OPENAPI: Final = VOUCHERIFY / "customer-activity.openapi-schemas.json"
SEED_FIXTURES: Final = REPO / "tests" / "fixtures" / "seed"
CATALOGUE_FIXTURES: Final = REPO / "tests" / "fixtures" / "catalogue"


def templates() -> list[dict[str, Any]]:
    """One event per catalogue type at least, in file order: the corpus, then the fixtures."""
    files = [p for folder in (EXAMPLES, SEED_FIXTURES, CATALOGUE_FIXTURES) for p in sorted(folder.glob("*.json"))]
    events = [json.loads(p.read_text()) for p in files]
    missing = KNOWN_TYPES - {canonical(e["type"]) for e in events}
    if missing:
        raise LookupError(f"no example event for catalogue types {sorted(missing)} in {EXAMPLES} or the fixtures")
    return events
