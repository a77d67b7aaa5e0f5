"""The root of the package's own exceptions.

`except ConsumerError` catches every failure this package raises on purpose (bad settings, bad
input, an outage it names), and nothing from a library or a bug. Each class keeps its builtin
base too (`ValueError`, `RuntimeError`, ...), so callers that catch those still do.
"""

from __future__ import annotations


class ConsumerError(Exception):
    """Every exception the package raises on purpose derives from this."""
