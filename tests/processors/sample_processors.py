"""Processors for the loader tests, imported by ``module.path:ClassName`` as users would."""

from __future__ import annotations

from bridge.processors import Batch, Processor, ProcessorFactory
from bridge.processors.api import SnapshotBatch


class Collecting(Processor):
    def __init__(self, prefix: str = "", table: str = "") -> None:
        self.prefix = prefix
        self.table = table
        self.seen: list[str] = []

    async def process(self, batch: Batch) -> None:
        self.seen.extend(record.sequence_number for record in batch.records)


class Unfinished(Processor):  # forgot to implement process
    pass


class SharedFactory(ProcessorFactory):
    def __init__(self, app: str, size: int = 1) -> None:
        self.app = app
        self.size = size

    def create(self, shard_id: str) -> Processor:
        return Collecting(prefix=shard_id)


NOT_A_CLASS = 42


class NotAProcessor:
    pass


class SnapshotTaker(Collecting):
    """A custom processor that opts in to snapshots by implementing ``snapshot``."""

    async def snapshot(self, batch: SnapshotBatch) -> None:
        self.seen.extend(str(item) for item in batch.items)


class FailsOnTwo(Processor):
    """Fails on the record with sequence number 2, and only on it."""

    async def process(self, batch: Batch) -> None:
        if any(record.sequence_number == "2" for record in batch.records):
            raise ValueError("still cannot apply 2")
