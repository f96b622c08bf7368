"""Offsets the replica needs that the topic no longer holds: retention deleted them before they
were applied, or the topic was recreated. Found when a partition resumes from a stored offset
and when the broker refuses a fetch position; never skipped, because a replica that skipped
them would look complete and not be.

``on_gap`` decides: ``fail`` stops the replica (exit 1) naming the gap and the way out;
``restore`` replaces the file with a snapshot whose offsets the topic still holds, and follows
on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prometheus_client import Counter
from structlog.typing import FilteringBoundLogger

from bridge.replica._consumer import BrokerUnavailableError
from bridge.replica._handles import KafkaLink, ReplicaFile
from bridge.replica._messages import OutOfRange
from bridge.replica._readiness import FollowerReadiness
from bridge.replica._status import StatusPublisher
from bridge.snapshots import describe_gap, offsets_gap

if TYPE_CHECKING:
    from bridge.replica._assigner import PartitionAssigner
    from bridge.replica._snapshot_keeper import SnapshotKeeper


class OffsetGapError(Exception):
    """Messages the replica needs were deleted from the topic before it applied them."""

    def __init__(self, message: str, partitions: list[int]) -> None:
        super().__init__(message)
        self.partitions = partitions


class ReplicaGapError(Exception):
    """A gap that ``on_gap`` could not repair: the replica stops (exit 1) rather than skip."""


def gap_between(applied: Mapping[int, int], lows: Mapping[int, int]) -> OffsetGapError | None:
    """The gap between each partition's last applied offset and its first one still in the
    topic, if there is one."""
    gaps = offsets_gap(applied, lows)
    return OffsetGapError(describe_gap(gaps), sorted(gaps)) if gaps else None


async def refused_gap(
    events: list[OutOfRange], readiness: FollowerReadiness, kafka: KafkaLink
) -> OffsetGapError:
    """The broker refused a fetch position (retention deleted it, or the topic was
    recreated): a gap, whatever the low watermark says now."""
    partitions = sorted({e.partition for e in events})
    positions = {
        p: readiness.partitions[p].position for p in partitions if p in readiness.partitions
    }
    lows: Mapping[int, int] = {}
    with contextlib.suppress(BrokerUnavailableError):
        lows = await kafka.low_watermarks(partitions)
    gap = gap_between({p: n - 1 for p, n in positions.items()}, lows)
    if gap is not None:
        return gap
    detail = "; ".join(
        f"partition {e.partition}: offset {positions.get(e.partition, e.offset)} is out of "
        f"range ({e.detail})"
        for e in events
    )
    return OffsetGapError(detail, partitions)


@dataclass(eq=False, kw_only=True)
class GapHandler:
    """Does what ``on_gap`` says with a gap the follow loop ran into."""

    on_gap: Literal["fail", "restore"]
    readiness: FollowerReadiness
    gaps: Counter
    status: StatusPublisher
    assigner: PartitionAssigner
    file: ReplicaFile
    snapshots: SnapshotKeeper
    stopping: asyncio.Event
    log: FilteringBoundLogger

    async def handle(self, gap: OffsetGapError) -> None:
        """Repair the file from a snapshot, or raise ``ReplicaGapError``."""
        self.gaps.inc(max(1, len(gap.partitions)))
        self.readiness.gap = f"gap: {gap}"
        self.log.error(
            "offsets deleted from the topic before they were applied",
            gap=str(gap),
            partitions=gap.partitions,
            on_gap=self.on_gap,
        )
        with contextlib.suppress(Exception):
            await self.status.publish()
        path = self.file.path
        if self.on_gap == "fail":
            self.status.failure = f"gap: {gap}"
            raise ReplicaGapError(
                f"{gap}: resuming would skip them (on_gap: fail). Delete {path} to replay the "
                "topic from its beginning, or set on_gap: restore with snapshots"
            )
        await self.assigner.release()
        await self.file.close()
        self.readiness.phase = "restoring"
        result = await self.snapshots.restore()
        if result.manifest is None:
            if self.stopping.is_set():
                return
            self.status.failure = f"gap: {gap}; no snapshot covers it"
            raise ReplicaGapError(
                f"{gap}, and no snapshot covers it ({result.why_none()}): on_gap: restore "
                f"cannot repair {path}; delete it to replay the topic from its beginning"
            )
        self.readiness.gap = None
        self.assigner.opened(await self.file.open())
        self.readiness.phase = "streaming"
        self.assigner.check_soon()
        self.log.info("gap repaired from a snapshot", key=result.key)
