"""The processor interface users implement, and the pieces the runtime hands to it.

One ``Processor`` instance serves one shard for as long as this worker owns it. Records arrive
in order, in batches; when ``process`` returns, the runtime checkpoints after the batch (unless
the processor checkpoints itself). A processor that stores its own checkpoint together with its
data returns it from ``start``, and that answer wins over the lease table's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from bridge.core.readiness import Readiness
from bridge.errors import LeaseLostError as LeaseLostError  # noqa: PLC0414 (re-exported: part of the processor API)

if TYPE_CHECKING:
    from bridge.records import ChangeRecord


class EndReason(StrEnum):
    """Why a processor's ownership of a shard ended."""

    SHUTDOWN = "shutdown"
    """The worker is stopping (SIGTERM/SIGINT), or hands the shard to another worker at a
    batch boundary (rebalancing). Every batch that ``process`` finished was checkpointed; one
    abandoned (its destination down, or the drain timeout reached) was not, and is delivered
    again by the shard's next owner."""
    SHARD_END = "shard_end"
    """The shard is closed and every record was processed; its children start next."""
    LEASE_LOST = "lease_lost"
    """Another worker owns the shard now; nothing more may be written for it."""
    PAUSED = "paused"
    """The shard waits for a fresh snapshot of the table (``on_trimmed: rebootstrap``): every
    finished batch was checkpointed, and reading resumes, on this worker or another, once the
    snapshot is through."""
    FAILED = "failed"
    """Processing stopped at a record that kept failing (``on_error: stop``) or the stream
    failed."""


class RetriableError(Exception):
    """The destination is unavailable (a broker or database down, a network partition), not the
    records at fault: the runtime tries the batch again until it succeeds, the worker stops, or
    the lease moves on. It never counts toward ``max_attempts``, so an outage never sends
    records to the dead-letter file or halts a shard.

    Any exception with a true ``retriable`` attribute is treated the same way (the Kafka
    processor's ``KafkaDeliveryError`` is one); set ``retriable = False`` on a subclass whose
    failure is the record's own.
    """

    retriable = True


class PartialBatchError(Exception):
    """Raise it from ``process`` when the records before ``first_failed`` (a sequence number
    of the batch) were applied and that one failed (Lambda's ``ReportBatchItemFailures``):
    the records before it are checkpointed, and the batch is tried again from it."""

    def __init__(self, first_failed: str, message: str = "") -> None:
        super().__init__(message or f"the batch failed at sequence number {first_failed}")
        self.first_failed = first_failed


def is_retriable(error: BaseException) -> bool:
    """Whether ``error`` says the destination is unavailable rather than the records bad."""
    return getattr(error, "retriable", False) is True


class Checkpointer(Protocol):
    async def checkpoint(self, sequence_number: str) -> None:
        """Record that every record up to and including ``sequence_number`` is done.

        Raises ``LeaseLostError`` when the lease moved on: the processor must then stop.
        """
        ...


@dataclass(frozen=True, slots=True)
class ShardContext:
    shard_id: str
    table: str
    stream_arn: str
    worker_id: str
    checkpointer: Checkpointer
    parent_shard_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one shard, in stream order; never empty."""

    shard_id: str
    records: Sequence[ChangeRecord]

    @property
    def last_sequence_number(self) -> str:
        return self.records[-1].sequence_number

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True, slots=True)
class SnapshotBatch:
    """One page of one segment of the table's snapshot (``source.start: bootstrap | auto``),
    items exactly as the Scan returned them (DynamoDB JSON on the wire), never empty unless
    ``last``. Every change older than ``cutoff_ms`` is in the snapshot; the stream delivers
    every newer one after the whole snapshot is through."""

    segment: str
    """The segment's lease key (``ShardContext.shard_id`` of the processor it goes to)."""
    index: int
    total: int
    """The segment's number and how many the scan has: the snapshot is complete once each of
    the ``total`` segments delivered its ``last`` page."""
    cutoff_ms: int
    key_names: Sequence[str]
    """The table's key attributes, partition key first."""
    items: Sequence[dict[str, Any]]
    scanned_at_ms: int
    last: bool
    """The segment's last page: nothing of it follows."""

    def __len__(self) -> int:
        return len(self.items)


class Processor(ABC):
    """Apply a shard's changes somewhere. Subclass it and name it in ``processor.kind``.

    ``processor.options`` are passed to the constructor as keyword arguments.
    """

    checkpoint_after_batch: bool = True
    """Set to False when ``process`` checkpoints through ``context.checkpointer`` itself."""

    async def start(self, context: ShardContext) -> str | None:
        """Called once before the first batch. Return a checkpoint stored with the data, if any."""
        self.context = context
        return None

    @abstractmethod
    async def process(self, batch: Batch) -> None:
        """Apply the batch. Raise to have it retried: ``RetriableError`` (destination down)
        until it succeeds, anything else up to ``processor.max_attempts``, then ``on_error``."""

    async def snapshot(self, batch: SnapshotBatch) -> None:
        """Apply a page of the table's snapshot. Override it to take part in snapshots: the
        worker then scans the table for this processor when it starts with
        ``source.start: bootstrap | auto``. A processor created for a snapshot segment gets
        only ``start``, ``snapshot`` and ``end`` calls (``context.shard_id`` is the segment's
        lease key). Raise as in ``process``: the page is tried again, and the segment's
        position moves past it only once this returns."""
        raise NotImplementedError(f"{type(self).__name__} does not take snapshots")

    async def at_tip(self) -> None:  # noqa: B027 - optional hook
        """Called after a read that found nothing new: the shard is caught up. Processors that
        report freshness (readiness, lag) use it; others ignore it."""

    async def end(self, reason: EndReason) -> None:  # noqa: B027 - optional hook
        """Called once when ownership ends; after ``LEASE_LOST`` nothing may be written."""


class ProcessorFactory(ABC):
    """Creates one processor per shard and owns what they share (one producer per worker)."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect shared resources and check them (fail here, clearly, rather than per shard)."""

    @abstractmethod
    def create(self, shard_id: str) -> Processor: ...

    def takes_snapshots(self) -> bool:
        """Whether its processors implement ``snapshot``, so that the cluster scans the table
        for them on a new application's start (``bootstrap``, ``auto``). A processor that
        scans into its own store (the SQLite replica) says False and does it in ``open``."""
        return False

    def takes_fresh_snapshots(self) -> bool:
        """Whether its processors apply a fresh snapshot of the table taken while shards are
        read (``on_trimmed: rebootstrap``, after records were trimmed before they were read);
        by default, those that take snapshots do."""
        return self.takes_snapshots()

    def takes_lanes(self) -> bool:
        """Whether ``process`` may be called concurrently for one shard, a lane of a batch
        each (``processor.parallelism``): not for a processor that keeps its own checkpoint,
        which one lane would move past another's records."""
        return True

    def scans_itself(self) -> bool:
        """Whether ``open`` fills the processor's store from the table by itself when the
        configuration asks for a bootstrap (the SQLite replica does, into its file)."""
        return False

    def freshness(self, now: float) -> Readiness | None:
        """The processors' own verdict on how fresh their data is, for ``/readyz`` (the SQLite
        replica judges its own); None, the default, leaves readiness to the worker. ``now`` is
        the worker's monotonic clock."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release shared resources; called after every processor ended."""


class PerShardFactory(ProcessorFactory):
    """The factory used for a plain ``Processor`` class: a new instance per shard."""

    def __init__(self, cls: type[Processor], options: Mapping[str, Any]) -> None:
        self.cls = cls
        self.options = dict(options)

    def create(self, shard_id: str) -> Processor:
        return self.cls(**self.options)

    def takes_snapshots(self) -> bool:
        return self.cls.snapshot is not Processor.snapshot

    def takes_lanes(self) -> bool:
        return self.cls.checkpoint_after_batch
