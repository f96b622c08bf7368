"""Whether a worker is ready, judged from a reading of its state: pure, time passed in.

Ready means running with no fatal error, the lease table in reach (a take cycle read it
lately), every shard it consumes read lately, its lag under ``ready_lag``, and the processor,
when it judges its own freshness (as the SQLite replica does), agreeing. A worker holding no
lease is ready too: in a cluster larger than the shard count that is its legitimate share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


@dataclass(frozen=True)
class ReadinessLimits:
    ready_lag_ms: float
    table_patience: float
    """Seconds without a successful read of the lease table before the worker is not ready."""
    read_patience: float
    """Seconds a consumed shard may go unread (an idle shard is still read every idle
    interval) before the worker is not ready."""

    @classmethod
    def of(
        cls, *, ready_lag: float, lease_duration: float, take_interval: float, idle_interval: float
    ) -> ReadinessLimits:
        table = max(lease_duration, 3 * take_interval)
        return cls(ready_lag * 1000, table, max(table, 3 * idle_interval))


@dataclass(frozen=True)
class WorkerReading:
    """What readiness looks at, read from a worker at ``now`` (its monotonic clock)."""

    now: float
    fatal: str | None = None
    stopping: bool = False
    last_take_ok: float | None = None
    last_reads: Mapping[str, float] = field(default_factory=dict)
    """When each shard being consumed was last read."""
    lag_ms: float = 0.0
    processor: Readiness | None = None
    """The processor's own verdict, when it has one."""


def judge(reading: WorkerReading, limits: ReadinessLimits) -> Readiness:
    if reading.fatal is not None:
        return Readiness(False, f"failed: {reading.fatal}")
    if reading.stopping:
        return Readiness(False, "stopping")
    if reading.last_take_ok is None:
        return Readiness(False, "starting: lease table not read yet")
    unread = reading.now - reading.last_take_ok
    if unread > limits.table_patience:
        return Readiness(False, f"lease table not read for {unread:.0f}s")
    for shard, read_at in sorted(reading.last_reads.items()):
        silent = reading.now - read_at
        if silent > limits.read_patience:
            return Readiness(False, f"shard {shard} not read for {silent:.0f}s")
    if reading.lag_ms >= limits.ready_lag_ms:
        return Readiness(False, f"lag {reading.lag_ms:.0f} ms over {limits.ready_lag_ms:.0f} ms")
    if reading.processor is not None and not reading.processor.ready:
        return Readiness(False, f"processor: {reading.processor.reason}")
    return Readiness(True, "ready")
