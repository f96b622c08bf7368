"""Is the replica fit to read? Pure bookkeeping of each shard's lag and last sign of life.

Ready means: streaming (not bootstrapping), every owned shard heard from within
``stall_after`` (a batch, or a read that found nothing new), and the worst lag under
``ready_lag``. A replica whose consumer stopped turns not-ready by itself: the verdict is
republished every second with a timestamp, so readers also notice when the writer is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.freshness import Freshness, oldest_watermark, worst_lag


@dataclass
class _Shard:
    last_activity: float
    lag_ms: float | None = None
    watermark_ms: int | None = None


@dataclass
class ReadinessTracker(Freshness):
    _shards: dict[str, _Shard] = field(default_factory=dict)
    _was_ready: bool = False
    _handover_until: float = 0.0

    def started(self, shard: str, now: float) -> None:
        self._shards[shard] = _Shard(last_activity=now)

    def batch(self, shard: str, created_at: float, wall_now: float) -> None:
        state = self._shards.setdefault(shard, _Shard(last_activity=0.0))
        state.lag_ms = max(0.0, (wall_now - created_at) * 1000)
        state.watermark_ms = int(created_at * 1000)

    def active(self, shard: str, now: float) -> None:
        if shard in self._shards:
            self._shards[shard].last_activity = now

    def caught_up(self, shard: str, now: float) -> None:
        state = self._shards.get(shard)
        if state is not None:
            state.last_activity = now
            state.lag_ms = 0.0

    def ended(self, shard: str, now: float, *, shard_end: bool = False) -> None:
        """A shard read to its end hands over to children that start a moment later: that
        moment is not a loss of freshness."""
        self._shards.pop(shard, None)
        if shard_end:
            self._handover_until = now + self.stall_after

    def lag_ms(self) -> float | None:
        return worst_lag(s.lag_ms for s in self._shards.values())

    def watermark_ms(self) -> int | None:
        return oldest_watermark(s.watermark_ms for s in self._shards.values())

    def verdict(self, now: float) -> tuple[bool, str]:
        ready, reason = self._judge(now)
        self._was_ready = self._was_ready or ready
        return ready, reason

    def _judge(self, now: float) -> tuple[bool, str]:
        if (verdict := self.not_streaming()) is not None:
            return verdict
        if not self._shards:
            if self._was_ready and now < self._handover_until:
                return True, "ready (shards handing over to their children)"
            return False, "no shards being read"
        for shard, state in sorted(self._shards.items()):
            silent = now - state.last_activity
            if self.stalled(silent):
                return False, f"shard {shard} silent for {silent:.0f}s"
        unknown = [s for s, state in self._shards.items() if state.lag_ms is None]
        # A shard just opened by a split has not been read yet; before the first ready verdict
        # that means catching up, afterwards it is a child a poll away from being read.
        if unknown and not self._was_ready:
            return False, "catching up"
        lag = self.lag_ms()
        if lag is None:
            return False, "catching up"
        if not self.fresh(lag):
            return False, f"lag {lag:.0f} ms over {self.ready_lag * 1000:.0f} ms"
        return True, "ready"
