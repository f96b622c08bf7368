"""The Kafka messages of the table's snapshot (``source.start: bootstrap | auto``).

Each scanned item is one envelope with ``"event": "SNAPSHOT"``: ``new`` is the item, ``old``,
``seq`` and ``shard`` are null, ``ts`` is when the page was scanned, and ``snapshot`` names the
snapshot (its cut-off) and the segment. Its key is the item's key exactly as a change of the
same item has it, so both land in one partition, where the snapshot comes first (no shard is
read before the whole scan is through). When a segment is done, a ``SNAPSHOT_END`` marker for
that segment goes to every partition after its items: a reader knows the snapshot is complete
in a partition once it has read the marker of every segment there. Item envelopes carry the
``bridge-key-types`` header, and with ``types`` the item in DynamoDB JSON, as changes do.
"""

from __future__ import annotations

from typing import Any

import orjson

from bridge.item_json import PORTABLE, dumps
from bridge.processors.api import SnapshotBatch
from bridge.processors.kafka import _debezium as debezium
from bridge.processors.kafka._envelope import (
    Envelope,
    Headers,
    key_shape,
    key_types_header,
    wire_json,
)


class SnapshotEncoder:
    def __init__(self, table: str, *, types: bool = False, debezium: bool = False) -> None:
        self.table = table
        self.types = types
        self.debezium = debezium
        self._head: Headers = [
            ("bridge-event", b"SNAPSHOT"),
            ("bridge-table", table.encode()),
        ]
        self._end_headers: Headers = [
            ("bridge-event", b"SNAPSHOT_END"),
            ("bridge-table", table.encode()),
        ]

    def items(self, batch: SnapshotBatch) -> list[Envelope]:
        about = _about(batch)
        names = batch.key_names
        messages: list[Envelope] = []
        headers: Headers = []
        for item in batch.items:
            new = PORTABLE.item(item)
            keys = {name: new[name] for name in names}
            if not headers:  # every item of a table has the same key shape
                shape = key_shape({name: item[name] for name in names})
                headers = [*self._head, key_types_header(shape)]
            envelope = (
                debezium.snapshot_value(self.table, new, about, batch.scanned_at_ms)
                if self.debezium
                else {
                    "table": self.table,
                    "event": "SNAPSHOT",
                    "keys": keys,
                    "new": new,
                    "old": None,
                    "seq": None,
                    "shard": None,
                    "ts": batch.scanned_at_ms,
                    "snapshot": about,
                }
            )
            if self.types:
                envelope["types"] = {
                    "keys": {name: item[name] for name in names},
                    "new": item,
                    "old": None,
                }
                value = orjson.dumps(envelope, default=wire_json)
            else:
                value = dumps(envelope)
            messages.append((dumps(keys, sort_keys=True), value, headers))
        return messages

    def segment_end(self, batch: SnapshotBatch) -> Envelope:
        """The marker that follows the segment's items in every partition."""
        about = _about(batch)
        key = dumps({"bridge_snapshot": batch.cutoff_ms, "segment": batch.index}, sort_keys=True)
        if self.debezium:
            value = debezium.snapshot_end_value(self.table, about, batch.scanned_at_ms)
            return key, dumps(value), self._end_headers
        envelope = {
            "table": self.table,
            "event": "SNAPSHOT_END",
            "keys": None,
            "new": None,
            "old": None,
            "seq": None,
            "shard": None,
            "ts": batch.scanned_at_ms,
            "snapshot": about,
        }
        return key, dumps(envelope), self._end_headers


def _about(batch: SnapshotBatch) -> dict[str, Any]:
    return {"cutoff_ms": batch.cutoff_ms, "segment": batch.index, "segments": batch.total}
