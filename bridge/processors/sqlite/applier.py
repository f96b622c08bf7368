"""Applying a shard's batch to the replica: rows and the shard's checkpoint in one transaction.

Because the checkpoint commits with the data, the replica and its position can never disagree
after a crash: that is what makes the file exactly-once in effect. Puts and deletes are also
conditional on the row's ``_seq`` (``ReplicaTable.upsert``/``delete``), so a change applied
twice, or an older one after a newer, changes nothing. The replica table itself is created
from the first record applied: its key attributes, in ``key_order`` or the stream's order,
become typed primary-key columns, and every later record must have the same key. Key values
are bound by ``keys.py``'s rule, so distinct numbers stay distinct rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from bridge.item_json import EXACT, dynamodb_json
from bridge.processors.sqlite.keys import SqlValue, number_value, wire_key
from bridge.processors.sqlite.layout import register
from bridge.processors.sqlite.schema import (
    CHECKPOINT,
    ReplicaSchemaError,
    ReplicaTable,
    stored_seq,
)
from bridge.processors.sqlite.writer import ReplicaWriter
from bridge.records import ChangeRecord


class ChangeApplier:
    def __init__(
        self, writer: ReplicaWriter, table_name: str, key_order: Sequence[str] | None
    ) -> None:
        self.writer = writer
        self.table_name = table_name
        self.key_order = list(key_order) if key_order else None
        self.table: ReplicaTable | None = None
        """The replica table, once the file has one (made by the first batch or a scan)."""
        self.cutoff_ms: int | None = None
        """Changes older than this are in the bootstrap scan already and are skipped."""

    async def apply(self, shard_id: str, records: Sequence[ChangeRecord]) -> None:
        """Apply the batch and move the shard's checkpoint to its last record."""
        checkpoint = records[-1].sequence_number
        if self.cutoff_ms is not None:
            cutoff = self.cutoff_ms / 1000
            records = [r for r in records if r.approximate_creation_time.timestamp() >= cutoff]
        await self.writer.call(self._apply, shard_id, records, checkpoint)

    # -- on the writer thread --------------------------------------------------------------

    def load_table(self) -> None:
        """The replica table as the file records it (``_bridge_tables``), if it has one."""
        row = (
            self.writer.connection()
            .execute("SELECT key_columns FROM _bridge_tables WHERE name = ?", (self.table_name,))
            .fetchone()
        )
        if row is not None:
            self.table = ReplicaTable(self.table_name, [tuple(k) for k in orjson.loads(row[0])])

    def _apply(self, shard_id: str, records: Sequence[ChangeRecord], checkpoint: str) -> None:
        db = self.writer.connection()
        if not records:  # all older than the bootstrap's cut-off: only the position moves
            db.execute(CHECKPOINT, (shard_id, checkpoint, int(time.time() * 1000)))
            return
        table = self.ensure_table(dynamodb_json(records[0])["Keys"])
        upsert, delete = table.upsert(), table.delete()
        key_of = _key_reader(table)
        now_ms = int(time.time() * 1000)
        puts: list[tuple[Any, ...]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                change = dynamodb_json(record)
                keys = key_of(change["Keys"])
                if record.event == "REMOVE":
                    if puts:
                        db.executemany(upsert, puts)
                        puts = []
                    params = {f"k{i}": value for i, value in enumerate(keys)}
                    db.execute(delete, {**params, "seq": stored_seq(record.sequence_number)})
                    continue
                image = change.get("NewImage")
                if image is None:
                    raise ReplicaSchemaError(
                        f"{record.event} record {record.sequence_number} has no new image: the "
                        "stream's view type must be NEW_IMAGE or NEW_AND_OLD_IMAGES"
                    )
                item = EXACT.item_json(image).decode()
                puts.append((*keys, item, stored_seq(record.sequence_number), now_ms))
            if puts:
                db.executemany(upsert, puts)
            db.execute(CHECKPOINT, (shard_id, checkpoint, now_ms))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def ensure_table(self, keys: Mapping[str, Any]) -> ReplicaTable:
        """The replica table, made from the key attributes (DynamoDB JSON) if the file has
        none yet; on the writer thread."""
        if self.table is not None:
            if set(self.table.key_names) != set(keys):
                raise ReplicaSchemaError(
                    f"replica table {self.table_name} has key {self.table.key_names}, but the "
                    f"stream's records have {sorted(keys)}: use a new table or file"
                )
            return self.table
        order = self.key_order or list(keys)
        if set(order) != set(keys):
            raise ReplicaSchemaError(
                f"key_order {order} does not match the stream's key attributes {sorted(keys)}"
            )
        columns = [(name, next(iter(keys[name]))) for name in order]
        table = ReplicaTable(self.table_name, columns)
        db = self.writer.connection()
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(table.create())
            register(db, table)
        self.table = table
        return table


def _key_reader(table: ReplicaTable) -> Callable[[Mapping[str, Any]], tuple[SqlValue, ...]]:
    """Key values straight from the wire form (``Keys``), by ``keys.py``'s rule: cheaper than
    decoding the keys to Python values first. The common shapes (one or two S/N keys) get a
    reader without a loop, as it runs per change."""
    columns = list(table.keys)
    if len(columns) == 1 and columns[0][1] in ("S", "N"):
        [(name, kind)] = columns
        if kind == "S":
            return lambda keys: (keys[name]["S"],)
        return lambda keys: (number_value(keys[name]["N"]),)
    if len(columns) == 2 and all(kind in ("S", "N") for _, kind in columns):
        (first, first_kind), (second, second_kind) = columns
        if first_kind == second_kind == "S":
            return lambda keys: (keys[first]["S"], keys[second]["S"])
        one = _reader(first, first_kind)
        two = _reader(second, second_kind)
        return lambda keys: (one(keys), two(keys))
    return lambda keys: tuple(wire_key(kind, keys[name]) for name, kind in columns)


def _reader(name: str, kind: str) -> Callable[[Mapping[str, Any]], SqlValue]:
    if kind == "S":
        return lambda keys: keys[name]["S"]
    return lambda keys: number_value(keys[name]["N"])
