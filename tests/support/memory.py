"""A processor for in-process worker tests: every record goes to a shared ``RecordSink``.

The sink is handed over through ``processor.options`` (``{"sink": sink}``), so the worker loads
the processor the way a user's would be loaded (``tests.support.memory:SinkProcessor``) and the
test can wait on the sink instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bridge.processors.api import Batch, EndReason, Processor, RetriableError, ShardContext

if TYPE_CHECKING:
    from bridge.records import ChangeRecord


@dataclass(frozen=True)
class Seen:
    shard: str
    seq: str
    event: str
    key: str
    version: int


@dataclass(frozen=True)
class Poison:
    """The record (key, version) a processor cannot handle."""

    key: str
    version: int


@dataclass
class RecordSink:
    """What the processors of one worker saw: records, shard ends, and calls that failed."""

    records: list[Seen] = field(default_factory=list)
    ends: list[tuple[str, EndReason]] = field(default_factory=list)
    failures: list[Seen] = field(default_factory=list)
    poison: Poison | None = None
    slow_every: int = 0
    """Pause ``slow_for`` seconds on every ``slow_every``-th batch (0: never)."""
    slow_for: float = 0.0
    down: bool = False
    """While set, every batch fails with ``RetriableError``: the destination is unavailable."""
    hang: bool = False
    """While set, every batch waits forever: a destination that never answers."""
    outage_calls: int = 0
    batches: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], within: float) -> None:
        """Return once ``condition()`` holds; ``TimeoutError`` after ``within`` seconds."""
        deadline = time.monotonic() + within
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met after {within}s ({len(self.records)} seen)")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue


class SinkProcessor(Processor):
    def __init__(self, sink: RecordSink) -> None:
        self.sink = sink

    async def start(self, context: ShardContext) -> str | None:
        self.context = context
        return None

    async def process(self, batch: Batch) -> None:
        sink = self.sink
        sink.batches += 1
        if sink.down or sink.hang:
            sink.outage_calls += 1
            sink.notify()
            if sink.hang:
                await asyncio.Event().wait()
            raise RetriableError("the destination is unavailable")
        if sink.slow_every and sink.batches % sink.slow_every == 0:
            await asyncio.sleep(sink.slow_for)  # a processor that is sometimes slow
        seen = [_seen(record) for record in batch.records]
        poison = sink.poison
        for record in seen:
            if poison is not None and (record.key, record.version) == (poison.key, poison.version):
                sink.failures.append(record)
                sink.notify()
                raise ValueError(f"cannot handle {record.key} version {record.version}")
        sink.records.extend(seen)
        sink.notify()

    async def end(self, reason: EndReason) -> None:
        self.sink.ends.append((self.context.shard_id, reason))
        self.sink.notify()


def _seen(record: ChangeRecord) -> Seen:
    image = record.new_image or record.old_image or {}
    return Seen(
        shard=record.shard_id,
        seq=record.sequence_number,
        event=record.event,
        key=str(record.keys["pk"]),
        version=int(image.get("version", 0)),
    )
