"""How far the table's snapshot in the topic has been read: is the replica's copy whole yet?

The cluster publishes a snapshot (``source.start: bootstrap``) as ``SNAPSHOT`` items, then,
per scan segment, a ``SNAPSHOT_END`` marker to every partition after that segment's items. A
partition therefore holds the whole snapshot once it has shown the marker of every segment.
Until every partition has, a replica that has read to the topic's end still lacks items the
scan has yet to publish, so it is not ready.

Only the newest snapshot seen counts: a topic may still hold an older one (a fresh snapshot
taken after records were trimmed), and once the newest is complete the older ones no longer
matter. Pure: the store persists what it is fed (``_bridge_kafka_snapshots``, in the same
transaction as the rows and offsets), and readiness asks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridge.replica._messages import Change, SnapshotEnd, Upsert

SEEN = -1
"""The segment recorded for a partition that showed a snapshot's items but no marker yet."""
SWEPT = -2
"""The segment recorded (partition -1) once a complete snapshot's gone items were deleted."""


@dataclass(frozen=True)
class MarkRow:
    """One stored fact: ``partition`` showed snapshot ``cutoff_ms`` (of ``segments``), and,
    unless ``segment`` is ``SEEN``, that segment's end marker."""

    partition: int
    cutoff_ms: int
    segments: int
    segment: int


def mark_row(partition: int, change: Change | None) -> MarkRow | None:
    """What a change read from ``partition`` tells of the snapshot, if anything."""
    if isinstance(change, SnapshotEnd):
        mark = change.mark
        return MarkRow(partition, mark.cutoff_ms, mark.segments, mark.segment)
    if isinstance(change, Upsert) and change.snapshot is not None:
        return MarkRow(partition, change.snapshot.cutoff_ms, change.snapshot.segments, SEEN)
    return None


@dataclass
class SnapshotProgress:
    segments: dict[int, int] = field(default_factory=dict)
    """Cut-off -> how many segments that snapshot has."""
    ended: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    """(cut-off, partition) -> the segments whose end marker the partition showed."""

    @classmethod
    def of(cls, rows: Iterable[MarkRow]) -> SnapshotProgress:
        progress = cls()
        for row in rows:
            progress.add(row)
        return progress

    def add(self, row: MarkRow) -> None:
        self.segments[row.cutoff_ms] = row.segments
        if row.segment != SEEN:
            self.ended.setdefault((row.cutoff_ms, row.partition), set()).add(row.segment)

    def incomplete(self, partitions: Iterable[int]) -> str | None:
        """Why the newest snapshot is not whole in ``partitions`` yet; None once it is (or
        when the topic shows none)."""
        if not self.segments:
            return None
        cutoff = max(self.segments)
        total = self.segments[cutoff]
        for partition in sorted(partitions):
            done = len(self.ended.get((cutoff, partition), ()))
            if done < total:
                at = datetime.fromtimestamp(cutoff / 1000, UTC).isoformat(timespec="seconds")
                return (
                    f"table snapshot of {at}: partition {partition} has {done} of {total} segments"
                )
        return None
