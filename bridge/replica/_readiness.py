"""Is the replica fresh? Pure bookkeeping per partition; times are passed in.

Ready means: following (not starting or stopped), the broker answered within ``stall_after``,
the topic has partitions, every partition is either read to its high watermark or its
newest applied message is younger than ``ready_lag``, and every partition holds the whole of
the newest table snapshot the topic showed (``_snapshot_progress``). A replica stuck behind a
high watermark that keeps moving turns not-ready as its last message ages; one whose broker
stopped answering turns not-ready after ``stall_after``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.freshness import Freshness, oldest_watermark, worst_lag
from bridge.replica._snapshot_progress import SnapshotProgress


@dataclass
class PartitionProgress:
    position: int
    """The next offset to apply."""
    message_ms: int | None = None
    """Timestamp of the newest message applied (Kafka's, epoch ms)."""
    high: int | None = None
    """The high watermark as last fetched; None until the broker told us."""

    def read_to_end(self) -> bool:
        return self.high is not None and self.position >= self.high

    def lag_ms(self, wall_ms: int) -> float | None:
        """0 once read to the high watermark, else the newest applied message's age."""
        if self.read_to_end():
            return 0.0
        if self.message_ms is not None:
            return float(max(0, wall_ms - self.message_ms))
        return None


@dataclass
class FollowerReadiness(Freshness):
    stall_after: float = 10.0
    phase: str = "starting"
    broker: str = "the broker"
    partitions: dict[int, PartitionProgress] = field(default_factory=dict)
    broker_ok_at: float | None = None
    broker_error: str | None = None
    topic_error: str | None = None
    gap: str | None = None
    """Offsets the replica needs were deleted from the topic: not ready, whatever else."""
    snapshots: SnapshotProgress = field(default_factory=SnapshotProgress)
    """The table's snapshot in the topic: not ready until every partition holds all of it."""

    def assigned(self, partition: int, position: int, message_ms: int | None) -> None:
        self.partitions[partition] = PartitionProgress(position, message_ms)

    def applied(self, partition: int, offset: int, message_ms: int | None) -> None:
        state = self.partitions.setdefault(partition, PartitionProgress(offset + 1))
        state.position = max(state.position, offset + 1)
        if message_ms is not None:
            state.message_ms = max(state.message_ms or 0, message_ms)

    def high_watermark(self, partition: int, high: int) -> None:
        state = self.partitions.get(partition)
        if state is not None and high >= 0:
            state.high = max(state.high or 0, high)

    def reached_end(self, partition: int, offset: int) -> None:
        state = self.partitions.get(partition)
        if state is not None:
            state.position = max(state.position, offset)
            state.high = max(state.high or 0, offset)

    def broker_answered(self, now: float) -> None:
        self.broker_ok_at = now
        self.broker_error = None

    def broker_failed(self, error: str) -> None:
        self.broker_error = error

    def lag_ms(self, wall_ms: int) -> float | None:
        return worst_lag(s.lag_ms(wall_ms) for s in self.partitions.values())

    def behind(self) -> int | None:
        """Messages between the positions and the known high watermarks (None: none known)."""
        known = [s for s in self.partitions.values() if s.high is not None]
        if not known:
            return None
        return sum(max(0, (s.high or 0) - s.position) for s in known)

    def watermark_ms(self) -> int | None:
        return oldest_watermark(s.message_ms for s in self.partitions.values())

    def verdict(self, now: float, wall_ms: int) -> tuple[bool, str]:
        if self.gap is not None:
            return False, self.gap
        if (verdict := self.not_streaming()) is not None:
            return verdict
        silent = None if self.broker_ok_at is None else now - self.broker_ok_at
        if self.stalled(silent):
            since = "not reached yet" if silent is None else f"silent for {silent:.0f}s"
            if self.broker_error:  # it names the broker
                return False, f"kafka broker {since}: {self.broker_error}"
            return False, f"kafka {self.broker} {since}"
        if self.topic_error is not None:
            return False, self.topic_error
        if not self.partitions:
            return False, "no partitions assigned"
        for partition, state in sorted(self.partitions.items()):
            if state.read_to_end():
                continue
            age_ms = None if state.message_ms is None else wall_ms - state.message_ms
            if age_ms is not None and self.fresh(age_ms):
                continue
            if state.high is None:
                return False, f"partition {partition}: catching up (end not known yet)"
            behind = state.high - state.position
            old = "" if age_ms is None else f", newest applied {age_ms / 1000:.1f}s old"
            return False, f"partition {partition}: {behind} messages behind{old}"
        if (incomplete := self.snapshots.incomplete(self.partitions)) is not None:
            return False, incomplete
        return True, "ready"
