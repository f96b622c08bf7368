"""The table's snapshot, planned as leases: checkpoint first, a segmented scan, then the stream.

A new application whose processor takes snapshots (``source.start: bootstrap | auto``) starts
by recording a cut-off: now, less a margin for clock skew and DynamoDB's one-second rounding
of creation times. Changes older than the cut-off are in the scan; every newer one is read
from the stream after it. The scan's segments are leases like the shards' (taken, renewed,
stolen, fenced and checkpointed the same way), so a cluster of N workers scans N segments at
once, and a segment whose worker died is resumed by another from its last committed page. A
segment's key carries the cut-off; every shard lease created with the snapshot lists every
segment among its parents, so no shard is read, and no change is published, before the whole
scan is: in each Kafka partition the snapshot comes first. Once the segments are done, the
shards are read from their oldest records, skipping what is older than the cut-off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

SEGMENT_PREFIX = "bridge-snapshot"
_SEGMENT_KEY = re.compile(r"bridge-snapshot-(\d+)-(\d+)-of-(\d+)")


@dataclass(frozen=True, order=True)
class Segment:
    """One segment of one snapshot: ``cutoff_ms`` names the snapshot."""

    cutoff_ms: int
    index: int
    total: int

    @property
    def key(self) -> str:
        """Its lease key: never a shard id (``shardId-...``), sorts in segment order."""
        return f"{SEGMENT_PREFIX}-{self.cutoff_ms}-{self.index:04d}-of-{self.total:04d}"


def segment_of(key: str) -> Segment | None:
    """The segment a lease key names; None for a shard's lease."""
    match = _SEGMENT_KEY.fullmatch(key)
    if match is None:
        return None
    cutoff, index, total = (int(group) for group in match.groups())
    return Segment(cutoff, index, total)


def segments(cutoff_ms: int, total: int) -> list[Segment]:
    return [Segment(cutoff_ms, index, total) for index in range(total)]


def cutoff_of(parents: Iterable[str]) -> int | None:
    """The cut-off a shard's reading skips to: that of the snapshot among its parents (the
    latest, should there be several); None for a shard created after any snapshot."""
    cutoffs = [segment.cutoff_ms for key in parents if (segment := segment_of(key)) is not None]
    return max(cutoffs, default=None)


@dataclass(frozen=True)
class SnapshotRequest:
    """What the configuration asks of a new application's first sync."""

    segments: int
    margin_ms: int


def plan_cutoff(now_ms: int, request: SnapshotRequest) -> int:
    return now_ms - request.margin_ms


class RetentionVerdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    REFUSE = "refuse"


def retention_verdict(age_s: float, retention_s: float) -> RetentionVerdict:
    """Whether a scan that has run ``age_s`` since its cut-off can still be completed by the
    stream: the changes after the cut-off must be read before retention trims them. At half
    the retention, warn; close to it, refuse, rather than hand over a snapshot the stream can
    no longer bring up to date."""
    if age_s > retention_s * 0.9:
        return RetentionVerdict.REFUSE
    if age_s > retention_s * 0.5:
        return RetentionVerdict.WARN
    return RetentionVerdict.OK
