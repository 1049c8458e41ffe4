"""RFC 3339 UTC timestamps as the API and the JSON log write them: what
``datetime.fromtimestamp(when, UTC).isoformat(...)`` gives (``Z`` for
``+00:00``), with the date and time of day formatted once per second (a log
line per registration, a listing of 100,000 instances, ask for few)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

#: Whole second -> its date and time of day (bounded).
_SECONDS: dict[float, str] = {}


def rfc3339(when: float, always_millis: bool = False) -> str:
    """``when`` (seconds since the epoch) with milliseconds, or without them
    when it is a whole second and not ``always_millis``."""
    fraction, second = math.modf(when)
    micros = round(fraction * 1e6)  # fromtimestamp's rounding, carried into the second
    if micros >= 1_000_000:
        micros -= 1_000_000
        second += 1.0
    elif micros < 0:
        micros += 1_000_000
        second -= 1.0
    head = _SECONDS.get(second)
    if head is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        head = _SECONDS[second] = datetime.fromtimestamp(second, tz=UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
    if always_millis or when % 1:
        return f"{head}.{micros // 1000:03d}Z"
    return head + "Z"
