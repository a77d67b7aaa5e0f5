"""The one personal-data policy (consumer/pii.py): its patterns, and every user of them."""

from __future__ import annotations

import pytest

from consumer.pii import (
    REDACTED,
    is_secret,
    mask_embedded,
    mask_text,
    mask_url,
    scrub_for_log,
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail to jane.doe+x@example.co.uk failed", "mail to [email] failed"),
        ("call +1 (555) 010-9999 now", "call [phone] now"),
        ("tel 0044 20 7946 0958", "tel [phone]"),
        ("+44 7700 900123", "[phone]"),
        # Not phones: SMTP codes, short provider error numbers, ISO dates.
        ("550 5.1.1 user unknown, error 21614", "550 5.1.1 user unknown, error 21614"),
        ("points expired on 2024-05-31.", "points expired on 2024-05-31."),
    ],
)
def test_free_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ('{"email":"a@b.io","n":1700000000000}', f'{{"email":"{REDACTED}","n":1700000000000}}'),
        ('{"phone":"+48 500 600 700"}', f'{{"phone":"{REDACTED}"}}'),
        ('{"us":"(555) 123-4567"}', f'{{"us":"{REDACTED}"}}'),
        # Bare digit runs in JSON are timestamps, amounts and ids: kept.
        ('{"amount":123456789,"at":"2024-05-31T10:00:00Z"}', '{"amount":123456789,"at":"2024-05-31T10:00:00Z"}'),
    ],
)
def test_embedded_text_masks_only_unmistakable_numbers(text: str, masked: str) -> None:
    assert mask_embedded(text) == masked


def test_embedded_text_can_say_what_it_masked() -> None:
    assert mask_embedded("a@b.io +48 500 600 700", "[email]", "[phone]") == "[email] [phone]"


def test_log_values_drop_personal_keys_and_secrets_at_any_depth() -> None:
    value = {
        "customer": {"id": "cust_1"},
        "order": {"metadata": {"x": 1}, "items": [{"name": "Jane"}], "amount": 100},
        "sasl.password": "hunter2",
        "note": "write to jane@example.com",
    }
    assert scrub_for_log(value) == {
        "customer": REDACTED,
        "order": {"metadata": REDACTED, "items": [{"name": REDACTED}], "amount": 100},
        "sasl.password": REDACTED,
        "note": f"write to {REDACTED}",
    }


@pytest.mark.parametrize(
    "key",
    ["sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret", "ssl.key.pem", "sasl.oauthbearer.config"],
)
def test_secret_keys(key: str) -> None:
    assert is_secret(key)


@pytest.mark.parametrize("key", ["sasl.username", "bootstrap.servers", "security.protocol", "ssl.ca.location"])
def test_not_secret_keys(key: str) -> None:
    assert not is_secret(key)


def test_url_credentials() -> None:
    assert mask_url("https://u:p@registry:8081/x") == f"https://{REDACTED}@registry:8081/x"
    assert mask_url("http://registry:8081") == "http://registry:8081"
