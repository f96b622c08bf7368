"""Debezium's change-event value, for ``processor.options.format: debezium``.

Consumers that already speak Debezium (its JDBC and other sinks, ksqlDB, Flink's
``debezium-json`` format, ``ExtractNewRecordState``) read bridge's topic unchanged: the value
is Debezium's envelope without a schema (what its JSON converter writes with
``schemas.enable: false``): ``before``, ``after``, ``op`` (``c`` create, ``u`` update, ``d``
delete, ``r`` snapshot read), ``ts_ms`` (when bridge published it), ``transaction`` (null) and a
``source`` block saying where the change came from. The message key, the headers, tombstones
and the values' encoding are the same as in bridge's own format.

A snapshot segment's end, which Debezium has no event for, is a message with ``op: "m"``
(Debezium's op for a message that is not a row change) whose ``message.prefix`` is
``bridge.snapshot_end``: consumers that act on ``c``/``u``/``d``/``r`` pass it over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge import __version__

OPS = {"INSERT": "c", "MODIFY": "u", "REMOVE": "d", "SNAPSHOT": "r"}
CONNECTOR = "dynamodb"
SNAPSHOT_END_PREFIX = "bridge.snapshot_end"


def _source(table: str, ts_ms: int, **fields: Any) -> dict[str, Any]:
    return {
        "version": __version__,
        "connector": CONNECTOR,
        "name": "bridge",
        "ts_ms": ts_ms,
        "db": "dynamodb",
        "table": table,
        **fields,
    }


def change_value(
    table: str,
    event: str,
    new: Any,
    old: Any,
    *,
    seq: str,
    shard: str,
    ts_ms: int,
    now_ms: int,
) -> dict[str, Any]:
    """A stream change: ``ts_ms`` in ``source`` is DynamoDB's creation time of the change."""
    return {
        "before": old,
        "after": new,
        "source": _source(table, ts_ms, snapshot="false", shard=shard, seq=seq),
        "op": OPS[event],
        "ts_ms": now_ms,
        "transaction": None,
    }


def snapshot_value(table: str, item: Any, about: Mapping[str, int], ts_ms: int) -> dict[str, Any]:
    """An item of the table's snapshot: ``about`` names the snapshot and segment."""
    return {
        "before": None,
        "after": item,
        "source": _source(table, ts_ms, snapshot="true", shard=None, seq=None, **about),
        "op": "r",
        "ts_ms": ts_ms,
        "transaction": None,
    }


def snapshot_end_value(table: str, about: Mapping[str, int], ts_ms: int) -> dict[str, Any]:
    """The end of one segment of the snapshot, in every partition."""
    return {
        "op": "m",
        "ts_ms": ts_ms,
        "source": _source(table, ts_ms, snapshot="true", shard=None, seq=None, **about),
        "message": {"prefix": SNAPSHOT_END_PREFIX, "content": dict(about)},
    }
