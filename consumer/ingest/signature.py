"""Voucherify's webhook signature: lowercase hex HMAC-SHA256 of the body, keyed with the secret.

Voucherify signs the JSON with the whitespace outside strings removed, and its senders may
or may not send it that way, so a body is tried as received first, then stripped. The
stripped form is made from the bytes, never by re-serialising (json.dumps changes them).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

SIGNATURE_HEADER = "x-voucherify-signature"

# A JSON string (escapes included, any byte inside) or a run of JSON whitespace.
_STRING_OR_SPACE = re.compile(rb'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def strip_whitespace(body: bytes) -> bytes:
    """`body` with JSON whitespace outside strings removed; strings (and their escapes) kept."""
    return _STRING_OR_SPACE.sub(lambda m: m.group(1) or b"", body)


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def well_formed(signature: str | None) -> bool:
    """64 hex digits: anything else cannot match and is refused before any HMAC is computed."""
    return signature is not None and _HEX64.fullmatch(signature.strip()) is not None


def matches(secrets: Sequence[str], body: bytes, signature: str) -> bool:
    """Whether `signature` is the HMAC of `body` (raw, then stripped) under any of `secrets`.

    Every comparison is constant-time; the stripped form is computed only when needed.
    """
    given = signature.strip().lower().encode()

    def signed_by_any(form: bytes) -> bool:
        return any(hmac.compare_digest(sign(s, form).encode(), given) for s in secrets)

    if signed_by_any(body):
        return True
    stripped = strip_whitespace(body)
    return stripped != body and signed_by_any(stripped)


class Verifier:
    """Which secrets sign which project's deliveries.

    A project with its own secrets is verified with those only (the plain list would let any
    holder of it sign for that project); any other project with the plain list. With no plain
    list, a project that has no secrets of its own is refused.
    """

    def __init__(self, secrets: Sequence[str], per_project: Mapping[str, Sequence[str]] | None = None) -> None:
        self.secrets = tuple(secrets)
        self.per_project = {p: tuple(s) for p, s in (per_project or {}).items()}

    def secrets_for(self, project_id: str | None) -> tuple[str, ...]:
        if project_id is not None and project_id in self.per_project:
            return self.per_project[project_id]
        return self.secrets

    def verify(self, body: bytes, signature: str | None, project_id: str | None) -> bool:
        if signature is None or not well_formed(signature):
            return False
        return matches(self.secrets_for(project_id), body, signature)

    def signer(self, body: bytes, signature: str | None) -> tuple[bool, str | None]:
        """For a body that names no project (unreadable, or not a delivery): whether any secret
        signed it, and the project whose own secret did (None for the plain list). No project
        is claimed, so no project's rule is bypassed by trying them all."""
        if self.verify(body, signature, None):
            return True, None
        for project_id in self.per_project:
            if self.verify(body, signature, project_id):
                return True, project_id
        return False, None
