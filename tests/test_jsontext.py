"""The hand-written JSON writers are the standard encoder's text, byte for byte."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from skydns.jsontext import instance_json, object_json, plain, register_json, service_json
from skydns.names import Callback, Service

SORTED = {"sort_keys": True, "separators": (",", ":")}

texts = st.text(max_size=12)
numbers = st.integers(-5, 70000) | st.booleans() | st.floats(allow_nan=False)
services = st.builds(
    Service,
    uuid=texts, name=texts, environment=texts, region=texts, version=texts, host=texts,
    port=numbers, ttl=st.integers(0, 2**40) | st.floats(allow_nan=False),
    priority=st.none() | numbers, weight=st.none() | st.integers(0, 65535),
    no_expire=st.booleans(), protocol=st.sampled_from(["tcp", "udp"]) | texts,
    drain=st.booleans(),
)  # fmt: skip
callbacks = st.builds(
    Callback, texts, texts, texts, texts, texts, texts, texts, st.integers(0, 65535)
)
times = st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 10**10)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
) | st.builds(object) | st.sets(st.integers(), max_size=2)


class WritersTests(SynchronousTestCase):
    @settings(max_examples=400, deadline=None)
    @given(
        service=services, now=times, expires=times,
        attached=st.lists(callbacks, max_size=2).map(tuple),
        fields=st.dictionaries(texts, values, max_size=5),
    )  # fmt: skip
    def test_each_writer_is_the_encoders_text(
        self, service: Service, now: Any, expires: Any, attached: tuple[Callback, ...],
        fields: dict[str, Any],
    ) -> None:  # fmt: skip
        """Whatever the text (non-ASCII, quotes, control characters) and the
        numbers (floats, bools, infinities where JSON has none)."""
        self.assertEqual(service_json(service), json.dumps(service.to_dict(), **SORTED))
        register = register_json(now, service)
        if register is not None:
            body = {"op": "register", "service": service.to_dict(), "now": now}
            self.assertEqual(register, json.dumps(body, **SORTED))
        instance = {"service": service.to_dict(), "expires": expires,
                    "callbacks": [cb.to_dict() for cb in attached]}  # fmt: skip
        self.assertEqual(
            instance_json(service, expires, attached), json.dumps(instance, **SORTED)
        )
        plain_fields = {key: plain(value) for key, value in fields.items()}
        self.assertEqual(
            object_json(fields.items()), json.dumps(plain_fields, separators=(",", ":"))
        )
