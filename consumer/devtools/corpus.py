"""Example events for the tools that need realistic traffic (bench/, the tests): one at least
per catalogue type, read from the checkout: Voucherify's examples, then the seed's and
today's fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from consumer.catalogue import KNOWN_TYPES, canonical

REPO: Final = Path(__file__).resolve().parents[2]
CORPUS: Final = REPO.parent / "shared" / "voucherify" / "examples"
SEED_FIXTURES: Final = REPO / "tests" / "fixtures" / "seed"
CATALOGUE_FIXTURES: Final = REPO / "tests" / "fixtures" / "catalogue"


def templates() -> list[dict[str, Any]]:
    """One event per catalogue type at least, in file order: the corpus, then the fixtures."""
    files = [p for folder in (CORPUS, SEED_FIXTURES, CATALOGUE_FIXTURES) for p in sorted(folder.glob("*.json"))]
    events = [json.loads(p.read_text()) for p in files]
    missing = KNOWN_TYPES - {canonical(e["type"]) for e in events}
    if missing:
        raise LookupError(f"no example event for catalogue types {sorted(missing)} in {CORPUS} or the fixtures")
    return events
