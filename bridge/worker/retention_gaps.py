"""What a shard's reader does when retention trimmed records before it read them.

``on_trimmed`` decides (``core.positions.after_trim``): stop with an error, read on, or read on
and ask for a fresh snapshot of the table (``rebootstrap``). A snapshot among the shard's
parents taken within the retention already holds whatever was trimmed, so then nothing is
lost. Losses are counted exactly where the stream allows it (``core.losses``) and reported
once a checkpoint past the gap lands, or when the shard stops at it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from structlog.typing import FilteringBoundLogger

from bridge.core.losses import LossLedger
from bridge.core.positions import IteratorRequest, OnTrimmed, TrimAction, after_trim
from bridge.core.snapshot_plan import cutoff_of
from bridge.metrics import Metrics
from bridge.processors.api import ShardContext
from bridge.streams.errors import (
    FatalStreamError,
    StreamError,
    StreamNotFoundError,
    TrimmedDataError,
)
from bridge.streams.reader import StreamReader
from bridge.worker.lease_holder import LeaseHolder


class RecordsTrimmedError(FatalStreamError):
    """Records were trimmed by retention before this shard read them (``on_trimmed: fail``)."""


@dataclass(frozen=True)
class TrimOutcome:
    retry_from: IteratorRequest
    skip_before_ms: int | None
    """A snapshot holds the records older than this: the reader passes over them."""


@dataclass(eq=False, kw_only=True)
class RetentionGaps:
    reader: StreamReader
    context: ShardContext
    holder: LeaseHolder
    on_trimmed: OnTrimmed
    retention_s: float
    metrics: Metrics
    log: FilteringBoundLogger
    wall_clock: Callable[[], float] = time.time
    losses: LossLedger = field(default_factory=LossLedger)

    @property
    def shard_id(self) -> str:
        return self.context.shard_id

    async def after_trim(self, position: str | None, exc: TrimmedDataError) -> TrimOutcome:
        """The records after ``position`` are gone: where to read on, or
        ``RecordsTrimmedError`` with ``on_trimmed: fail``."""
        self.log.error(
            "records were trimmed by retention before they were read",
            after=position,
            on_trimmed=self.on_trimmed,
            error=str(exc),
        )
        covered = self._snapshot_covers_trim()
        decision = after_trim(position, self.on_trimmed, covered=covered is not None)
        if covered is not None:
            self.log.info("a snapshot since holds what was trimmed", cutoff_ms=covered)
        if decision.action is TrimAction.REBOOTSTRAP:
            await self._want_snapshot()
        self.losses.gap_found(decision.lost_after)
        if decision.action is TrimAction.FAIL or decision.retry_from is None:
            await self._measure_loss()
            raise RecordsTrimmedError(
                f"records after {position} were trimmed before they were read (on_trimmed: fail)",
                code=exc.code,
                status=exc.status,
                context=f"shard {self.shard_id} of {self.context.stream_arn}",
            ) from exc
        return TrimOutcome(decision.retry_from, covered)

    async def trimmed_away(self) -> bool:
        """Is the stream still there without this shard? Retention removed the whole shard
        (closed, and every record older than retention), which is a trim, not a fatal error."""
        description = await self.reader.describe_stream(self.context.stream_arn)
        return all(shard.shard_id != self.shard_id for shard in description.shards)

    async def after_shard_trimmed_away(
        self, position: str | None, exc: StreamNotFoundError
    ) -> None:
        """Nothing of the shard is left; unless ``fail``, it counts as ended so its children
        start. How many records went with it cannot be known, so none are counted."""
        self.log.error(
            "shard was trimmed away by retention before it was read to its end; "
            "the records after the checkpoint are lost (how many is unknown)",
            after=position,
            on_trimmed=self.on_trimmed,
        )
        self.losses.forget()
        if self.on_trimmed == "rebootstrap" and self._snapshot_covers_trim() is None:
            await self._want_snapshot()
        if self.on_trimmed == "fail":
            raise RecordsTrimmedError(
                f"the shard was trimmed away after {position} before it was read to its end "
                "(on_trimmed: fail)",
                code=exc.code,
                status=exc.status,
                context=f"shard {self.shard_id} of {self.context.stream_arn}",
            ) from exc

    async def count_lost_to_shard_end(self) -> None:
        """The shard is closed and nothing after the gap is left: the loss runs to its end."""
        try:
            description = await self.reader.describe_stream(self.context.stream_arn)
        except StreamError as exc:
            self.log.warning("could not measure the loss", error=repr(exc))
            return
        for shard in description.shards:
            if shard.shard_id == self.shard_id and shard.ending_sequence_number is not None:
                self.losses.ran_to_shard_end(shard.ending_sequence_number)

    def report_loss(self) -> None:
        loss = self.losses.checkpointed()
        if loss is not None:
            self.metrics.records_lost.inc(loss.count)
            self.log.error("records lost to retention", count=loss.count, after=loss.after)

    def _snapshot_covers_trim(self) -> int | None:
        """The cut-off of a snapshot among the shard's parents that holds whatever retention
        trimmed: one taken within the retention, so every trimmed record is older."""
        cutoff = cutoff_of(self.holder.lease.parents)
        oldest_kept_ms = (self.wall_clock() - self.retention_s) * 1000
        return cutoff if cutoff is not None and cutoff >= oldest_kept_ms else None

    async def _want_snapshot(self) -> None:
        self.log.warning("asking for a fresh snapshot of the table (on_trimmed: rebootstrap)")
        await self.holder.want_snapshot(round(self.wall_clock() * 1000))

    async def _measure_loss(self) -> None:
        """Before stopping, look at the oldest record still there so the loss is counted."""
        try:
            iterator = await self.reader.get_shard_iterator(
                self.context.stream_arn, self.shard_id, "TRIM_HORIZON", None
            )
            page = await self.reader.get_records(iterator, 1)
        except Exception as exc:
            self.log.warning("could not measure the loss", error=repr(exc))
            return
        if page.records:
            self.losses.first_available(page.records[0].sequence_number)
        elif page.next_iterator is None:
            await self.count_lost_to_shard_end()
        self.report_loss()  # the shard stops here: no checkpoint will follow
