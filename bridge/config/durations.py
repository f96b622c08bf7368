"""Durations as people write them in YAML: ``250ms``, ``10s``, ``2m``, ``1h``, ``1d``.

A bare number means seconds, so ``BRIDGE_POLLING__INTERVAL=0.25`` works from a shell too.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")

EXPECTED = "a duration such as 250ms, 10s, 2m, 1h or 1d"


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected {EXPECTED}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"expected {EXPECTED}, not a negative number")
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            number, unit = match.groups()
            return timedelta(seconds=float(number) * _UNITS[unit or "s"])
    raise ValueError(f"expected {EXPECTED}")


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling, so that ``config check`` prints what a person would write."""
    millis = round(value.total_seconds() * 1000)
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % factor == 0:
            return f"{millis // factor}{unit}"
    return f"{millis}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
