"""Tests for `skydns.jsoninput`: strict, depth-bounded JSON for everything
that arrives from outside, and its use at each door (HTTP bodies, log
entries, membership requests, AMP answers, configuration entries)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from skydns import jsoninput
from skydns.bodies import ValidationError, parse_service
from skydns.commands import CommandDecodeError, decode
from skydns.http.members import parse_add
from skydns.http.responses import APIError
from skydns.raft.core.messages import EncodingError, decode_config
from skydns.raft.net.wire import decode_results

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="[]{}\"\\ab,:"),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


class LoadsTests(SynchronousTestCase):
    @given(values)
    @example("[")  # one bracket, inside a string: no nesting
    @example(['"[', {"]": "{"}])
    def test_nesting_is_the_depth(self, value: Any) -> None:
        """Brackets inside strings (escaped quotes included) never count."""
        self.assertEqual(jsoninput.nesting(json.dumps(value)), depth(value))

    @given(values)
    def test_loads_is_json_loads_within_the_bound(self, value: Any) -> None:
        text = json.dumps(value)
        self.assertEqual(jsoninput.loads(text), json.loads(text))
        self.assertEqual(jsoninput.loads(text.encode()), json.loads(text))

    def test_the_bound(self) -> None:
        self.assertEqual(depth(jsoninput.loads(nested(jsoninput.MAX_DEPTH))), 32)
        with self.assertRaisesRegex(ValueError, "nested deeper than 32 levels"):
            jsoninput.loads(nested(jsoninput.MAX_DEPTH + 1))
        # Far beyond Python's recursion limit: the same clear error.
        with self.assertRaisesRegex(ValueError, "nested deeper"):
            jsoninput.loads(nested(200_000))
        with self.assertRaisesRegex(ValueError, "nested deeper"):
            jsoninput.loads("{" + '"a":{' * 40 + "}" * 41)

    def test_non_finite_constants_refused(self) -> None:
        for text in ("NaN", "[Infinity]", '{"a":-Infinity}'):
            with self.subTest(text=text):
                self.assertRaises(ValueError, jsoninput.loads, text)


class DoorsTests(SynchronousTestCase):
    """Every door refuses deep nesting with its own clear error, never a
    RecursionError (whose threshold depends on the stack, so differs)."""

    deep = nested(5_000)

    def test_http_body(self) -> None:
        with self.assertRaises(ValidationError):
            parse_service("u1", ('{"Host":' + self.deep + "}").encode())

    def test_log_entry(self) -> None:
        with self.assertRaises(CommandDecodeError):
            decode(b'{"now":1.0,"op":"unregister","uuid":' + self.deep.encode() + b"}")

    def test_membership_request(self) -> None:
        with self.assertRaises(APIError):
            parse_add(('{"id":' + self.deep + "}").encode())

    def test_amp_answer(self) -> None:
        self.assertRaises(ValueError, decode_results, self.deep.encode(), 1)

    def test_configuration_entry(self) -> None:
        self.assertRaises(EncodingError, decode_config, ('{"voters":' + self.deep + "}").encode())
