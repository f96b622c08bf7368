"""When a local SQLite copy is fit to read: the rule the SQLite processor's replica and
``bridge replica`` share, so both judge by the same thresholds and say so in the same words.

A copy is fresh while it streams (not starting, bootstrapping, restoring or stopped), its
source showed a sign of life within ``stall_after``, and its worst source's lag (0 once read
to its end, else the age of the newest change applied) is under ``ready_lag``. What counts as
a source (a shard, a partition) and as a sign of life is each tracker's; pure, times passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Freshness:
    """The thresholds and the phase; trackers extend it with what they know of their sources."""

    ready_lag: float = 2.0
    """Seconds a copy may trail its source and still be ready."""
    stall_after: float = 30.0
    """Seconds without a sign of life from a source before the copy is not ready."""
    phase: str = "streaming"
    """Only ``streaming`` can be ready; any other phase is itself the reason it is not."""

    def not_streaming(self) -> tuple[bool, str] | None:
        """The verdict when the phase alone decides it, else None."""
        return None if self.phase == "streaming" else (False, self.phase)

    def stalled(self, silent: float | None) -> bool:
        """Whether a source silent for ``silent`` seconds (None: never heard) has stalled."""
        return silent is None or silent > self.stall_after

    def fresh(self, lag_ms: float) -> bool:
        return lag_ms < self.ready_lag * 1000


def worst_lag(lags: Iterable[float | None]) -> float | None:
    """The copy's lag: its slowest source's; None while no source's lag is known."""
    known = [lag for lag in lags if lag is not None]
    return max(known) if known else None


def oldest_watermark(marks: Iterable[int | None]) -> int | None:
    """The copy's watermark (epoch ms): everything before it is applied from every source."""
    known = [mark for mark in marks if mark is not None]
    return min(known) if known else None
