"""The one personal-data and secrets policy, for logs, results and dead-letter summaries.

Personal data (emails, phone numbers, names, addresses, free-form metadata) never reaches a
log line, a metric label, a DLQ summary or a result's free text. Credentials never reach a
log line. Everything that masks anything imports its patterns and key sets from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

REDACTED: Final = "[redacted]"

EMAIL: Final = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
# Any phone-like run: 8 to 15 digits with single separators; for short free text (a bounce
# reason), where a long digit run is more likely a number than an id. Not SMTP codes
# ("550 5.1.1") nor short provider error numbers.
# ISO dates ("2024-05-31") have eight digits too: they are not masked.
PHONE: Final = re.compile(r"(?<![\w+])(?!\d{4}-\d{2}-\d{2}(?![\d ().-]*\d))\+?\d(?:[ ().-]{0,2}\d){7,14}(?!\w)")
# Only unmistakable numbers: international (a leading +) or North-American "(555) 123-4567".
# For text full of legitimate digits (JSON, log lines): timestamps, amounts, offsets, ids.
PHONE_EXPLICIT: Final = re.compile(r"\+\d(?:[ ().-]{0,2}\d){7,14}(?!\d)|\(\d{3}\)\s?\d{3}[\s.-]\d{4}")

# What is personal about a person (a customer, holder, referrer or referee).
PERSONAL_FIELDS: Final = frozenset(
    {"name", "first_name", "last_name", "email", "phone", "birthdate", "birthday", "address"}
)
# Personal wherever they appear.
ALWAYS_PERSONAL: Final = frozenset({"email", "phone"})
# Keys whose object is a person.
PERSON_KEYS: Final = frozenset({"customer", "holder", "referrer", "referee"})
# Free-form objects: they may hold anything a merchant put there.
FREE_FORM_FIELDS: Final = frozenset({"metadata", "system_metadata"})
# Whole payloads: never logged, whatever they hold.
PAYLOAD_KEYS: Final = frozenset({"data", "value", "payload"})
NEVER_LOGGED: Final = PERSONAL_FIELDS | PERSON_KEYS | FREE_FORM_FIELDS | PAYLOAD_KEYS

# Covers every property librdkafka marks sensitive, e.g. sasl.oauthbearer.config and ssl.key.pem.
SECRET_KEY: Final = re.compile(
    r"password|passphrase|secret|token|credential|jaas|api[_.-]?key|oauthbearer\.config|key\.pem|private",
    re.IGNORECASE,
)
_URL_CREDENTIALS: Final = re.compile(r"//[^@/\s]+@")


# Results say what was masked; logs say only that something was.
EMAIL_MASK: Final = "[email]"
PHONE_MASK: Final = "[phone]"


def mask_text(s: str) -> str:
    """Short free text with emails and any phone-like number masked."""
    if "@" in s:
        s = EMAIL.sub(EMAIL_MASK, s)
    return PHONE.sub(PHONE_MASK, s)


def mask_embedded(s: str, email: str = REDACTED, phone: str = REDACTED) -> str:
    """Text full of legitimate digits (JSON, log lines): emails and explicit phone numbers masked."""
    if "@" in s:
        s = EMAIL.sub(email, s)
    if "+" in s or "(" in s:
        s = PHONE_EXPLICIT.sub(phone, s)
    return s


def mask_url(url: str) -> str:
    """A URL without its user:password part."""
    return _URL_CREDENTIALS.sub(f"//{REDACTED}@", url)


def is_secret(key: str) -> bool:
    return SECRET_KEY.search(key) is not None


def scrub_for_log(value: Any, depth: int = 0) -> Any:
    """`value` fit for a log line: personal and secret keys masked, emails and phones anywhere."""
    if isinstance(value, str):
        return mask_embedded(value)
    if depth > 4:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: scrub_item_for_log(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_for_log(v, depth + 1) for v in value]
    return value


def scrub_item_for_log(key: str, value: Any, depth: int = 0) -> Any:
    if key.lower() in NEVER_LOGGED or is_secret(key):
        return REDACTED
    return scrub_for_log(value, depth)
