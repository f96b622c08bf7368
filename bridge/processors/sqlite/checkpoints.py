"""Each shard's position in the replica file (``_bridge_checkpoints``), read and written through
the writer thread.

The position a batch reaches is written by ``ChangeApplier`` in the batch's own transaction;
what is here is everything else: the position a shard resumes from (which wins over the lease
table's), a shard read to its end (``SHARD_END``, so a snapshot knows it needs nothing more
from it once it has left the stream), and every position at once for a snapshot's manifest.
"""

from __future__ import annotations

import time

from bridge.core.positions import SHARD_END
from bridge.processors.sqlite.schema import CHECKPOINT
from bridge.processors.sqlite.writer import ReplicaWriter


class CheckpointStore:
    def __init__(self, writer: ReplicaWriter) -> None:
        self.writer = writer

    async def of(self, shard_id: str) -> str | None:
        """The shard's stored position, or None for a shard this file never read."""
        return await self.writer.call(self._read, shard_id)

    async def every(self) -> dict[str, str]:
        """Every shard's position."""
        return await self.writer.call(self._read_all)

    async def any(self) -> bool:
        """Whether the file holds a position at all (it has streamed before)."""
        return await self.writer.call(self._any)

    async def ended(self, shard_id: str) -> None:
        """Record that the shard was read to its end."""
        await self.writer.call(self._write, shard_id, SHARD_END)

    # -- on the writer thread --------------------------------------------------------------

    def _read(self, shard_id: str) -> str | None:
        row = (
            self.writer.connection()
            .execute("SELECT checkpoint FROM _bridge_checkpoints WHERE shard_id = ?", (shard_id,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def _read_all(self) -> dict[str, str]:
        rows = self.writer.connection().execute(
            "SELECT shard_id, checkpoint FROM _bridge_checkpoints"
        )
        return {str(shard): str(checkpoint) for shard, checkpoint in rows}

    def _any(self) -> bool:
        row = (
            self.writer.connection().execute("SELECT count(*) FROM _bridge_checkpoints").fetchone()
        )
        return bool(row[0])

    def _write(self, shard_id: str, checkpoint: str) -> None:
        self.writer.connection().execute(
            CHECKPOINT, (shard_id, checkpoint, int(time.time() * 1000))
        )
