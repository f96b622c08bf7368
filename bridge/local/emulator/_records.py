"""Stream records in the real wire shape, encoded once when the change happens.

A record is kept as the JSON bytes GetRecords will send, so reading is a join of byte strings
(no per-read serialisation) and a retained record costs little more than its own size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from bridge.local.emulator._sequence import format_sequence

VIEW_TYPES = frozenset({"KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"})
EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})


@dataclass(frozen=True, slots=True)
class CapturedChange:
    """One write to a table, as the capture hook saw it, images already encoded as JSON.

    ``partition_key`` is the encoded value of the item's partition key: it decides the shard,
    so every change of one item follows one lineage.
    """

    event_name: str
    partition_key: bytes
    keys: bytes
    new_image: bytes | None
    old_image: bytes | None

    @classmethod
    def from_attributes(
        cls,
        keys: Mapping[str, object],
        partition_attribute: str,
        new_image: Mapping[str, object] | None = None,
        old_image: Mapping[str, object] | None = None,
    ) -> CapturedChange:
        """A change from DynamoDB JSON maps; the event follows from which images exist."""
        if old_image is None:
            event = "INSERT"
        elif new_image is None:
            event = "REMOVE"
        else:
            event = "MODIFY"
        return cls(
            event_name=event,
            partition_key=orjson.dumps(keys[partition_attribute]),
            keys=orjson.dumps(keys),
            new_image=None if new_image is None else orjson.dumps(new_image),
            old_image=None if old_image is None else orjson.dumps(old_image),
        )


def encode_record(
    change: CapturedChange,
    *,
    sequence: int,
    created_at: float,
    region: str,
    view_type: str,
    event_id: str,
) -> bytes:
    """The record as GetRecords returns it (eventVersion 1.1, images as the view type says).

    ``ApproximateCreationDateTime`` is rounded down to the second, as the service documents:
    a consumer that orders or cuts off by it must allow for that here as it must on AWS.
    """
    dynamodb = [
        b'"ApproximateCreationDateTime":%d.0' % math.floor(created_at),
        b'"Keys":' + change.keys,
    ]
    size = len(change.keys)
    if change.new_image is not None and view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        dynamodb.append(b'"NewImage":' + change.new_image)
        size += len(change.new_image)
    if change.old_image is not None and view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        dynamodb.append(b'"OldImage":' + change.old_image)
        size += len(change.old_image)
    dynamodb += [
        b'"SequenceNumber":"' + format_sequence(sequence).encode() + b'"',
        b'"SizeBytes":%d' % size,
        b'"StreamViewType":' + orjson.dumps(view_type),
    ]
    return b"".join(
        (
            b'{"awsRegion":',
            orjson.dumps(region),
            b',"dynamodb":{',
            b",".join(dynamodb),
            b'},"eventID":',
            orjson.dumps(event_id),
            b',"eventName":',
            orjson.dumps(change.event_name),
            b',"eventSource":"aws:dynamodb","eventVersion":"1.1"}',
        )
    )
