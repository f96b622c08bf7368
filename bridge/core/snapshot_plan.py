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

A fresh snapshot (``on_trimmed: rebootstrap``: records were trimmed before they were read, so
the destination lacks changes) is taken while shards are being read. Its segments become
parents of every unfinished shard lease, so each reader stops at its next batch boundary and
says so on its lease (``paused_for_ms``); the segments are scanned only once every unfinished
shard is paused, unowned, or owned by a worker that is gone. No change is then published in
the middle of the snapshot: in each partition a change published before it is older than the
scan, and every one after it is newer than the cut-off or skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bridge.core.lease_keys import split_key
from bridge.core.leasing import Lease

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
    """The segment a lease key (or name) names; None for a shard's lease."""
    match = _SEGMENT_KEY.fullmatch(split_key(key).name)
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
    """When the configuration wants the table's snapshot, and how to take it."""

    segments: int
    margin_ms: int
    new_app: bool = True
    """A new application (an empty lease table) starts with one (``start: bootstrap | auto``)."""
    on_trim: bool = False
    """A shard that finds records trimmed before it read them asks for a fresh one
    (``on_trimmed: rebootstrap``), unless one taken since holds them."""


def latest_cutoff(leases: Iterable[Lease]) -> int | None:
    """The newest snapshot the lease table knows of: a segment's, or one among parents."""
    cutoffs = []
    for lease in leases:
        segment = segment_of(lease.key)
        if segment is not None:
            cutoffs.append(segment.cutoff_ms)
        parent_cutoff = cutoff_of(lease.parents)
        if parent_cutoff is not None:
            cutoffs.append(parent_cutoff)
    return max(cutoffs, default=None)


def snapshot_wanted(leases: Iterable[Lease], margin_ms: int) -> bool:
    """A shard asked for a snapshot, and none taken since its request covers it: a snapshot
    whose cut-off is no older than the request, less the margin, was started after it."""
    leases = list(leases)
    wanted = max((lease.snapshot_wanted_ms or 0 for lease in leases), default=0)
    if not wanted:
        return False
    latest = latest_cutoff(leases)
    return latest is None or latest < wanted - margin_ms


def pending_segments(leases: Iterable[Lease]) -> frozenset[str]:
    """The unfinished segments of the newest snapshot under way: what every unfinished shard
    must wait for."""
    unfinished = [
        (segment, lease.key)
        for lease in leases
        if not lease.finished and (segment := segment_of(lease.key)) is not None
    ]
    newest = max((segment.cutoff_ms for segment, _ in unfinished), default=None)
    return frozenset(key for segment, key in unfinished if segment.cutoff_ms == newest)


def still_read(leases: Iterable[Lease], cutoff_ms: int, live_workers: Iterable[str]) -> str | None:
    """A shard lease whose reader may still publish changes, so the scan of the snapshot of
    ``cutoff_ms`` must wait; None once there is none. A reader is done with it once it said
    so on its lease, or its lease has no owner, or the owner is no longer a live worker (its
    own deadline stopped it)."""
    live = set(live_workers)
    for lease in leases:
        if lease.finished or segment_of(lease.key) is not None or lease.owner is None:
            continue
        if lease.owner in live and (lease.paused_for_ms or 0) < cutoff_ms:
            return lease.key
    return None


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
