"""Hand-built stream records for the SQLite processor tests."""

from __future__ import annotations

import time
from typing import Any

from bridge.processors.api import Batch
from bridge.records import ChangeRecord, encode_item

SHARD = "shardId-0001"


def change(
    event: str,
    seq: int,
    keys: dict[str, Any],
    new: dict[str, Any] | None = None,
    *,
    created: float | None = None,
    shard: str = SHARD,
) -> ChangeRecord:
    dynamodb: dict[str, Any] = {
        "Keys": encode_item(keys),
        "SequenceNumber": str(seq),
        "SizeBytes": 100,
        "ApproximateCreationDateTime": created if created is not None else time.time(),
    }
    if new is not None:
        dynamodb["NewImage"] = encode_item({**keys, **new})
    return ChangeRecord.from_raw({"eventName": event, "dynamodb": dynamodb}, shard)


def batch(*records: ChangeRecord) -> Batch:
    return Batch(records[0].shard_id, list(records))
