"""What the replica says about itself: the ``_bridge_status`` row, the lag and partition
gauges, the /readyz verdict and the "catching up" log line, all read from one
``FollowerReadiness``.

One owner, so the row a reader of the file sees, the gauges and the probe never disagree. The
row is rewritten every ``STATUS_INTERVAL`` with a timestamp, so a reader also notices when the
writer is gone; a replica that stopped on an error says why in its last row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

from structlog.typing import FilteringBoundLogger

from bridge.health import Readiness
from bridge.metrics import Metrics
from bridge.replica._handles import ReplicaFile
from bridge.replica._readiness import FollowerReadiness

STATUS_INTERVAL = 1.0
"""``_bridge_status`` is republished this often; readers judge the writer alive by it."""
CATCH_UP_LOG_EVERY = 10.0
"""While not ready, how often "catching up" is logged (messages behind, rate)."""


class StatusPublisher:
    def __init__(
        self,
        readiness: FollowerReadiness,
        metrics: Metrics,
        file: ReplicaFile,
        assigned: Collection[int],
        *,
        clock: Callable[[], float],
        log: FilteringBoundLogger,
    ) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self._file = file
        self._assigned = assigned
        self._clock = clock
        self._log = log
        self._next_progress_log = 0.0
        self.failure: str | None = None
        """Why the replica stopped, when an error stopped it: its last row gives this reason."""

    def verdict(self) -> Readiness:
        ready, reason = self._readiness.verdict(self._clock(), int(time.time() * 1000))
        return Readiness(ready, reason)

    async def publish(self, *, stopped: bool = False) -> tuple[bool, str]:
        """Write the status row and set the gauges now; returns the verdict written."""
        readiness = self._readiness
        wall_ms = int(time.time() * 1000)
        if stopped:
            ready, reason = False, self.failure or "stopped"
        else:
            ready, reason = readiness.verdict(self._clock(), wall_ms)
        lag = readiness.lag_ms(wall_ms)
        self._metrics.lag_ms.set(lag or 0.0)
        self._metrics.shards_active.set(len(self._assigned))
        await self._file.write_status(
            ready,
            reason,
            lag,
            readiness.watermark_ms(),
            "stopped" if stopped else readiness.phase,
        )
        return ready, reason

    async def run(self) -> None:
        """Publish every ``STATUS_INTERVAL`` until cancelled, logging progress while behind."""
        started = self._clock()
        applied_at_start = self._metrics.value("bridge_records_consumed_total")
        while True:
            ready, _ = await self.publish()
            now = self._clock()
            behind = self._readiness.behind()
            if not ready and now >= self._next_progress_log and behind:
                self._next_progress_log = now + CATCH_UP_LOG_EVERY
                applied = self._metrics.value("bridge_records_consumed_total") - applied_at_start
                self._log.info(
                    "catching up",
                    messages_behind=behind,
                    applied=int(applied),
                    rate_per_s=round(applied / max(now - started, 1e-9)),
                )
            await asyncio.sleep(STATUS_INTERVAL)
