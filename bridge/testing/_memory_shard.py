"""What one shard of a ``MemoryStream`` holds: its records as DynamoDB JSON on the wire, their
sequence numbers, the horizon retention has moved, its end, and where each kind of iterator
starts in it.

Kept apart from the stream's calls (billing, injected failures, iterators, not-found answers)
because this is the part a consumer compares record by record with the service's.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.records import EventName, encode_item
from bridge.streams.errors import InvalidRequestError, TrimmedDataError
from bridge.streams.model import IteratorKind, Shard, ViewType


@dataclass
class MemoryShard:
    shard_id: str
    parent_shard_id: str | None
    starting_sequence: int
    ending_sequence: int | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)
    horizon: int = 0  # records before this index were trimmed away
    removed: bool = False

    @property
    def is_open(self) -> bool:
        return self.ending_sequence is None and not self.removed

    def append(self, raw: dict[str, Any], sequence: int) -> None:
        self.records.append(raw)
        self.sequences.append(sequence)

    def close(self) -> None:
        self.ending_sequence = self.sequences[-1] if self.sequences else self.starting_sequence

    def trim(self, count: int) -> None:
        self.horizon = min(len(self.records), self.horizon + count)

    def read_to_end(self, end: int) -> bool:
        """Whether a read that stopped at ``end`` reached SHARD_END (no next iterator)."""
        return self.ending_sequence is not None and end == len(self.records)

    def start_index(self, kind: IteratorKind, sequence_number: str | None, context: str) -> int:
        """The index of the first record an iterator of ``kind`` reads, as the service checks it."""
        if kind == "TRIM_HORIZON":
            return self.horizon
        if kind == "LATEST":
            return len(self.records)
        if sequence_number is None:
            raise InvalidRequestError(
                f"{kind} needs a sequence number",
                code="ValidationException",
                status=400,
                context=context,
            )
        wanted = int(sequence_number)
        index = bisect.bisect_left(self.sequences, wanted)
        if index >= len(self.sequences) or self.sequences[index] != wanted:
            raise InvalidRequestError(
                f"Sequence number {sequence_number} is not in this shard",
                code="ValidationException",
                status=400,
                context=context,
            )
        if index < self.horizon:
            raise TrimmedDataError(
                f"Sequence number {sequence_number} was trimmed from the shard",
                code="TrimmedDataAccessException",
                status=400,
                context=context,
            )
        return index + 1 if kind == "AFTER_SEQUENCE_NUMBER" else index

    def describe(self) -> Shard:
        return Shard(
            shard_id=self.shard_id,
            parent_shard_id=self.parent_shard_id,
            starting_sequence_number=str(self.starting_sequence),
            ending_sequence_number=(
                str(self.ending_sequence) if self.ending_sequence is not None else None
            ),
        )


def stream_record(
    sequence: int,
    event: EventName,
    keys: Mapping[str, Any],
    new_image: Mapping[str, Any] | None,
    old_image: Mapping[str, Any] | None,
    *,
    view_type: ViewType,
    created: float,
) -> dict[str, Any]:
    """A change as GetRecords returns it: images kept or dropped by the view type, as the
    service does, and ``SizeBytes`` measured on what is kept."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": round(created, 3),
        "Keys": encode_item(keys),
        "SequenceNumber": str(sequence),
        "StreamViewType": view_type,
    }
    if new_image is not None and view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        dynamodb["NewImage"] = encode_item(new_image)
    if old_image is not None and view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        dynamodb["OldImage"] = encode_item(old_image)
    dynamodb["SizeBytes"] = len(orjson.dumps(dynamodb))
    return {
        "eventID": f"{sequence:x}",
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
    }
