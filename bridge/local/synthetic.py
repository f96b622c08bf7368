"""Synthetic changes appended straight to a table's stream, for throughput runs.

Writing through moto reaches a few hundred items a second here, far below what one bridge
worker reads, so a benchmark of the worker itself needs a faster source. These changes are
INSERTs with the table's key attributes (of the declared types) and a ``payload`` string of
the asked size; they exist in the stream only, never in the table.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping

from bridge.local.emulator import CapturedChange

MAX_RECORDS = 1_000_000
MAX_SIZE = 350_000
"""Below DynamoDB's 400 KB item limit, with room for the keys."""


def synthetic_changes(
    key_schema: tuple[tuple[str, str], ...],
    key_types: Mapping[str, str],
    *,
    count: int,
    size: int,
    start: int = 0,
) -> Iterator[CapturedChange]:
    """``count`` INSERTs of distinct items numbered from ``start``."""
    payload = {"S": "x" * size}
    partition = next(name for name, kind in key_schema if kind == "HASH")
    for number in range(start, start + count):
        keys = {name: _key_value(key_types.get(name, "S"), number) for name, _ in key_schema}
        yield CapturedChange.from_attributes(
            keys, partition, new_image={**keys, "payload": payload}
        )


def _key_value(kind: str, number: int) -> dict[str, str]:
    if kind == "N":
        return {"N": str(number)}
    if kind == "B":
        return {"B": base64.b64encode(number.to_bytes(8, "big")).decode()}
    return {"S": f"item-{number}"}
