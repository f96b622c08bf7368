"""Change capture from moto: every table with a stream gets a shard object that feeds us.

moto calls ``table.stream_shard.add(old_item, new_item)`` on each write. Replacing that object
per table (instead of patching moto's classes) leaves any other moto user in the same process
alone, and makes the emulator see every write in the order moto applied it.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from bridge.local.emulator import CapturedChange, StreamIdentity, StreamsEmulator
from bridge.local.moto_state import moto_tables, stream_enabled

log = structlog.get_logger(__name__)


def _moto_json(value: object) -> object:
    """orjson fallback for the objects moto leaves inside item JSON."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__}")


def _encode(value: object) -> bytes:
    return orjson.dumps(value, default=_moto_json)


class CapturingShard:
    """Stands in for moto's ``StreamShard`` on one table and hands each change to the emulator."""

    def __init__(
        self,
        emulator: StreamsEmulator,
        table: Any,  # moto's Table: untyped
        arn: str,
        clock: Callable[[], float],
    ) -> None:
        self.emulator = emulator
        self.table = table
        self.arn = arn
        self._clock = clock

    def add(self, old: Any, new: Any) -> None:
        item = old if old is not None else new
        keys = {self.table.hash_key_attr: item.hash_key.to_json()}
        if self.table.range_key_attr is not None:
            keys[self.table.range_key_attr] = item.range_key.to_json()
        event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        change = CapturedChange(
            event_name=event,
            partition_key=_encode(keys[self.table.hash_key_attr]),
            keys=_encode(keys),
            new_image=None if new is None else _encode(new.to_json()["Attributes"]),
            old_image=None if old is None else _encode(old.to_json()["Attributes"]),
        )
        self.emulator.record_change(self.arn, change, self._clock())


def stream_arn(table: Any) -> str:
    """The ARN DescribeTable reports as LatestStreamArn, so both APIs name the same stream."""
    return f"{table.table_arn}/stream/{table.latest_stream_label}"


class TableWatcher:
    """Keeps the emulator's streams in step with moto's tables.

    ``sync`` runs after every request that can create, change or delete a table: tables whose
    stream was just enabled get a CapturingShard, and streams whose table went away or turned
    its stream off are disabled (they stay readable, as real ones do after deletion).
    """

    def __init__(self, emulator: StreamsEmulator, clock: Callable[[], float]) -> None:
        self.emulator = emulator
        self._clock = clock
        self._captured: dict[str, Any] = {}  # stream ARN -> moto Table
        self._lock = threading.Lock()

    def sync(self) -> None:
        with self._lock:
            self._sync(self._clock())

    def _sync(self, now: float) -> None:
        seen: set[str] = set()
        for table in moto_tables():
            if not table.latest_stream_label:
                continue
            arn = stream_arn(table)
            enabled = stream_enabled(table)
            shard = table.stream_shard
            if isinstance(shard, CapturingShard) and shard.emulator is not self.emulator:
                continue  # another endpoint in this process captures it
            if enabled and not isinstance(shard, CapturingShard):
                self._capture(table, arn, now)
            if enabled:
                seen.add(arn)
        for arn in [arn for arn in self._captured if arn not in seen]:
            table = self._captured.pop(arn)
            if isinstance(table.stream_shard, CapturingShard):
                table.stream_shard = None
            self.emulator.disable_stream(arn, now)
            log.info("stream disabled", stream=arn)

    def forget(self) -> None:
        """moto dropped every table (a reset): none is captured any more, and none of the
        streams they had is disabled on the way, since the emulator drops those too."""
        with self._lock:
            self._captured.clear()

    def _capture(self, table: Any, arn: str, now: float) -> None:
        identity = StreamIdentity(
            arn=arn,
            table_name=table.name,
            label=table.latest_stream_label,
            view_type=table.stream_specification.get("StreamViewType", "NEW_AND_OLD_IMAGES"),
            key_schema=tuple((k["AttributeName"], k["KeyType"]) for k in table.schema),
            region=table.region_name,
        )
        self.emulator.create_stream(identity, now)
        table.stream_shard = CapturingShard(self.emulator, table, arn, self._clock)
        self._captured[arn] = table
        log.info("stream enabled", stream=arn, view_type=identity.view_type)
