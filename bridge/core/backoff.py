"""How long to wait: after a failure (exponential, full jitter) and between polls (adaptive)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a uniform delay in ``[0, min(cap, base * 2**n)]``.

    Full jitter spreads the retries of many workers hit by the same throttling event, which a
    fixed or equal-jitter schedule would keep in lock-step.
    """

    base: float
    cap: float = 60.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"backoff needs 0 < base <= cap (got {self.base}, {self.cap})")

    def ceiling(self, attempt: int) -> float:
        """The largest delay ``attempt`` (0 for the first retry) may wait."""
        if attempt >= 64:
            return self.cap
        return min(self.cap, math.ldexp(self.base, max(0, attempt)))

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(attempt))


@dataclass
class PollPacer:
    """Poll again at once while a shard is behind; every ``interval`` while it keeps up; back
    off on empty reads.

    Each GetRecords call costs money and shares a per-shard limit of five calls a second with
    every other reader. A shard that is behind (its read came back full, or its records are
    old) is read again at once to catch up. A shard that keeps up gains nothing from reading
    again the moment a read returned a few fresh records: the next ones do not exist yet, so
    it waits ``interval`` (at most 1 / interval calls a second however busy it is). Idle
    shards are the common case on configuration tables, so an idle shard slows from
    ``interval`` to ``idle_interval`` by doubling, and the first record brings it back.
    """

    interval: float
    idle_interval: float
    _empty_reads: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.interval < 0 or self.idle_interval < self.interval:
            raise ValueError(
                "polling needs 0 <= interval <= idle_interval "
                f"(got interval={self.interval}, idle_interval={self.idle_interval})"
            )

    def after_read(self, records: int, *, behind: bool = False) -> float:
        """The pause before the next read, given how many records this read returned and
        whether the shard is behind (more records are waiting)."""
        if records > 0:
            self._empty_reads = 0
            return 0.0 if behind else self.interval
        self._empty_reads += 1
        if self.interval == 0:
            return 0.0
        exponent = min(self._empty_reads - 1, 32)
        return min(self.idle_interval, math.ldexp(self.interval, exponent))
