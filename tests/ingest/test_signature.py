"""Voucherify's signature rule: its published vectors, the byte-level whitespace stripper
(strings and escapes kept), and which secrets verify which project."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.ingest.signature import Verifier, matches, sign, strip_whitespace, well_formed

SECRET = "secretKey"  # the secret of Voucherify's published vectors


def test_published_vectors() -> None:
    a1 = "a17d2ac229d1ebbb5f10e839c7985c4818e5986eab297f7e5979196d4d7d3ed2"
    assert sign(SECRET, b'{"a":1}') == a1
    assert sign(SECRET, strip_whitespace(b'{\n  "a": 1\n}')) == a1
    assert (
        sign(SECRET, strip_whitespace(b'{"a\\"b":1}'))
        == "f7cf97814a03146abedb9793f56e1dec34f618f82d10395310d053f749483ffb"
    )
    assert sign(SECRET, b"  message  ") == "53ff92957e1427ce23ad5bda9d0c5f2f4ff384d0806b83eeacb510c842d3a358"


def test_a_body_verifies_raw_then_stripped() -> None:
    a1 = "a17d2ac229d1ebbb5f10e839c7985c4818e5986eab297f7e5979196d4d7d3ed2"
    assert matches([SECRET], b'{\n  "a": 1\n}', a1)  # signed compact, sent pretty
    assert matches([SECRET], b'{"a":1}', a1.upper())  # hex case does not matter
    assert matches([SECRET], b"  message  ", "53ff92957e1427ce23ad5bda9d0c5f2f4ff384d0806b83eeacb510c842d3a358")
    assert not matches([SECRET], b'{"a":2}', a1)
    assert not matches(["anotherKey"], b'{"a":1}', a1)
    assert not matches([], b'{"a":1}', a1)


def test_whitespace_inside_strings_and_escapes_is_kept() -> None:
    body = b'{ "a b" : [ 1 , "x \\" y" , "tab\\t\\\\" ] ,\r\n "c\\\\" : "\\u00e9 " }'
    assert strip_whitespace(body) == b'{"a b":[1,"x \\" y","tab\\t\\\\"],"c\\\\":"\\u00e9 "}'
    assert strip_whitespace('{ "é ü" : "日本 語" }'.encode()) == '{"é ü":"日本 語"}'.encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans())
def test_stripping_any_pretty_json_gives_the_compact_json(value: object, ascii_only: bool) -> None:
    pretty = json.dumps(value, indent=2, ensure_ascii=ascii_only).encode()
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only).encode()
    assert strip_whitespace(pretty) == compact
    assert strip_whitespace(compact) == compact


def test_signature_shape() -> None:
    assert well_formed("a" * 64) and well_formed(" " + "A" * 64 + " ")
    assert not well_formed(None) and not well_formed("") and not well_formed("g" * 64) and not well_formed("a" * 63)


def test_project_secrets_verify_their_project_only_and_the_plain_list_the_rest() -> None:
    body = b'{"project_id":"proj_a"}'
    verifier = Verifier(["plain"], {"proj_a": ["own-1", "own-2"]})
    assert verifier.verify(body, sign("own-2", body), "proj_a")
    assert not verifier.verify(body, sign("plain", body), "proj_a")  # the plain list cannot sign for proj_a
    assert verifier.verify(body, sign("plain", body), "proj_b")
    assert not verifier.verify(body, sign("own-1", body), "proj_b")
    assert verifier.verify(body, sign("plain", body), None)
    only_projects = Verifier([], {"proj_a": ["own-1"]})
    assert not only_projects.verify(body, sign("own-1", body), "proj_unknown")
    assert not only_projects.verify(body, None, "proj_a")


def test_a_body_that_names_no_project_is_tried_against_every_secret_and_says_whose() -> None:
    body = b"not json at all"
    verifier = Verifier(["plain"], {"proj_a": ["own-1"], "proj_b": ["own-2"]})
    assert verifier.signer(body, sign("plain", body)) == (True, None)
    assert verifier.signer(body, sign("own-2", body)) == (True, "proj_b")
    assert verifier.signer(body, sign("someone-else", body)) == (False, None)
    assert verifier.signer(body, None) == (False, None)
    assert Verifier([], {"proj_a": ["own-1"]}).signer(body, sign("own-1", body)) == (True, "proj_a")
