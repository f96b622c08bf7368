"""A journal processor for cluster tests: every batch, with when and by whom it was processed.

Each line names the worker process (``pid``), the ownership *tenure* (one processor instance:
a worker takes a lease, runs one consumer with one processor, and loses or gives the lease
back), ``t``, the system-wide monotonic clock when ``process`` was called, and ``done``, when
the batch was written. Tests compare them with their own ``time.monotonic()``: on Linux it is
one clock for every process.

Lines are written with one ``write`` call per batch and not fsynced: SIGKILL loses nothing the
kernel already accepted, and these tests never cut the power.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from bridge.processors.api import Batch, EndReason, Processor, ShardContext


class TimedJournalProcessor(Processor):
    def __init__(self, path: str, delay: float = 0.0) -> None:
        self.path = Path(path)
        self.delay = delay  # seconds each batch takes: a batch is more often in hand
        self.tenure = uuid.uuid4().hex[:12]
        self.batches = 0

    async def start(self, context: ShardContext) -> str | None:
        await super().start(context)
        self._append({"event": "start", **self._who(), "t": time.monotonic()})
        return None

    async def process(self, batch: Batch) -> None:
        started = time.monotonic()
        self.batches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        done = time.monotonic()
        who = self._who()
        lines = [
            orjson.dumps(
                {
                    **who,
                    "batch": self.batches,
                    "t": started,
                    "done": done,
                    "seq": record.sequence_number,
                    "key": str(record.keys["pk"]),
                    "version": int((record.new_image or {}).get("version", 0)),
                }
            )
            for record in batch.records
        ]
        self._write(b"\n".join(lines) + b"\n")

    async def end(self, reason: EndReason) -> None:
        self._append({"event": "end", "reason": str(reason), **self._who(), "t": time.monotonic()})

    def _who(self) -> dict[str, object]:
        return {
            "shard": self.context.shard_id,
            "worker": self.context.worker_id,
            "pid": os.getpid(),
            "tenure": self.tenure,
        }

    def _append(self, line: dict[str, object]) -> None:
        self._write(orjson.dumps(line) + b"\n")

    def _write(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Line:
    """One record as processed: which shard, by whom, in which batch, and when it started."""

    shard: str
    seq: str
    key: str
    version: int
    pid: int
    worker: str
    tenure: str
    batch: int
    t: float
    done: float


@dataclass(frozen=True)
class Event:
    """A tenure starting (``start``) or ending (``end`` with its ``reason``)."""

    event: str
    shard: str
    pid: int
    worker: str
    tenure: str
    t: float
    reason: str | None = None


@dataclass
class Journal:
    lines: list[Line]
    events: list[Event]

    def changes(self) -> set[tuple[str, int]]:
        return {(line.key, line.version) for line in self.lines}

    def ends(self) -> dict[str, Event]:
        """Each tenure's end event, by tenure id."""
        return {e.tenure: e for e in self.events if e.event == "end"}

    def starts(self) -> dict[str, Event]:
        return {e.tenure: e for e in self.events if e.event == "start"}


def read_timed_journal(path: Path) -> Journal:
    """Everything in the journal; a torn last line (a kill mid-write) is skipped."""
    return JournalReader(path).read()


class JournalReader:
    """Reads a growing journal incrementally: each ``read`` parses only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal = Journal([], [])
        self._offset = 0

    def read(self) -> Journal:
        if not self.path.exists():
            return self.journal
        with self.path.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]  # a torn last line waits for the next read
        self._offset += len(complete)
        for raw in complete.splitlines():
            row = orjson.loads(raw)
            if "event" in row:
                self.journal.events.append(Event(**row))
            else:
                self.journal.lines.append(Line(**row))
        return self.journal
