"""Reading a table with a parallel segmented Scan, page by page, resumable from any page.

Shared by both ways bridge fills a sink from the table: the SQLite processor's own bootstrap
and the cluster's snapshot (each scan segment a lease). A position is the Scan's
``LastEvaluatedKey`` written as text, so that it can be committed with what the page did: in
a SQLite transaction, or as a segment lease's checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

Position = dict[str, dict[str, Any]]
"""A Scan's ``ExclusiveStartKey``: key attributes in DynamoDB JSON."""


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: Position | None
    """Where the next page starts; None after the segment's last page."""


async def scan_page(
    client: Any,
    table: str,
    *,
    segment: int,
    segments: int,
    start: Position | None,
    limit: int | None = None,
) -> Page:
    """One page of one segment (a consistent read is not needed: the stream brings what
    changed while scanning)."""
    request: dict[str, Any] = {"TableName": table, "Segment": segment, "TotalSegments": segments}
    if limit:
        request["Limit"] = limit
    if start:
        request["ExclusiveStartKey"] = start
    answer = await client.scan(**request)
    return Page(list(answer.get("Items", [])), answer.get("LastEvaluatedKey") or None)


def dump_position(key: Position) -> str:
    """A scan position as text; binary key values (bytes from botocore) as hex."""
    plain = {
        name: {kind: {"hex": v.hex()} if isinstance(v, bytes) else v for kind, v in attr.items()}
        for name, attr in key.items()
    }
    return orjson.dumps(plain).decode()


def load_position(text: str) -> Position:
    plain: dict[str, dict[str, Any]] = orjson.loads(text)
    return {
        name: {
            kind: bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for kind, v in attr.items()
        }
        for name, attr in plain.items()
    }


def key_names(description: dict[str, Any]) -> list[str]:
    """The table's key attributes from DescribeTable's ``Table``, partition key first."""
    ordered = sorted(description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return [k["AttributeName"] for k in ordered]
