"""Keeping ``_bridge_status`` current: the replica's verdict on itself, for its readers.

A reader (``bridge.processors.sqlite.Replica``, ``bridge query``, any SQLite client) cannot ask
the worker whether the file is fit to read; it reads this row. The verdict is republished
every ``interval`` with a timestamp, so a reader also notices a writer that stopped or hangs:
its status ages. The verdict itself is ``ReadinessTracker``'s; this only writes it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from bridge.processors.sqlite.readiness import ReadinessTracker
from bridge.processors.sqlite.schema import STATUS
from bridge.processors.sqlite.writer import ReplicaWriter


class StatusPublisher:
    def __init__(
        self, writer: ReplicaWriter, readiness: ReadinessTracker, *, interval: float
    ) -> None:
        self.writer = writer
        self.readiness = readiness
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def publish(self) -> tuple[bool, str]:
        """Write the current verdict now; returns it."""
        ready, reason = self.readiness.verdict(time.monotonic())
        await self.writer.call(self.write, ready, reason)
        return ready, reason

    def start(self) -> None:
        """Publish every ``interval`` from now on, until ``stop``."""
        self._task = asyncio.create_task(self._publish_every_interval(), name="sqlite-status")

    async def stop(self) -> None:
        """Stop publishing every ``interval``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def publish_stopped(self) -> None:
        """The last word of a writer closing the file (if it is open): not ready, stopped."""
        if self.writer.is_open:
            await self.writer.call(self.write, False, "stopped")

    def write(self, ready: bool, reason: str) -> None:
        """On the writer thread: the status row as ``ready`` and ``reason`` say."""
        state = self.readiness
        self.writer.connection().execute(
            STATUS,
            (
                int(ready),
                state.lag_ms(),
                state.watermark_ms(),
                state.phase,
                reason,
                int(time.time() * 1000),
            ),
        )

    async def _publish_every_interval(self) -> None:
        while True:
            await self.publish()
            await asyncio.sleep(self.interval)
