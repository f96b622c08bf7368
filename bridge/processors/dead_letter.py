"""The dead-letter file: records a processor could not handle, with why and where they were.

JSON lines, appended and flushed to disk before the checkpoint moves past them, so a record
is never both skipped and unrecorded.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from bridge.records import ChangeRecord


class DeadLetterFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def write(self, record: ChangeRecord, error: BaseException, attempts: int) -> None:
        line = orjson.dumps(
            {
                "shard": record.shard_id,
                "seq": record.sequence_number,
                "event": record.event,
                "error": f"{type(error).__name__}: {error}",
                "attempts": attempts,
                "failed_at_ms": int(time.time() * 1000),
                "record": record.raw,
            },
            default=str,
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line + b"\n")

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
