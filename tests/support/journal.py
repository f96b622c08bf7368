"""A processor for crash tests: one JSON line per record, fsynced before ``process`` returns.

Whatever the runtime may have checkpointed is therefore on disk when the worker is killed with
SIGKILL; each line names the process that wrote it, so a test can tell the runs apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from bridge.processors.api import Batch, EndReason, PartialBatchError, Processor
from bridge.records import ChangeRecord


class JournalProcessor(Processor):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    async def process(self, batch: Batch) -> None:
        pid = os.getpid()
        lines = [
            orjson.dumps(
                {
                    "table": self.context.table,
                    "shard": record.shard_id,
                    "seq": record.sequence_number,
                    "key": _key_version(record)[0],
                    "version": _key_version(record)[1],
                    "pid": pid,
                }
            )
            for record in batch.records
        ]
        self._append(b"\n".join(lines) + b"\n")

    async def end(self, reason: EndReason) -> None:
        line = {"end": str(reason), "shard": self.context.shard_id, "pid": os.getpid()}
        self._append(orjson.dumps(line) + b"\n")

    def _append(self, data: bytes) -> None:
        # One write call per batch, so a kill leaves whole batches (a torn last line at worst).
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


class PoisonedJournal(JournalProcessor):
    """A journal that cannot apply one change, ``poison`` (``key@version``). With ``report`` it
    journals the records before that one and names it (``PartialBatchError``); without, the
    whole batch fails and nothing of it is journalled (``bisect_on_error`` finds the record)."""

    def __init__(self, path: str, poison: str, report: bool = False) -> None:
        super().__init__(path)
        key, _, version = poison.partition("@")
        self.poison = (key, int(version))
        self.report = report

    async def process(self, batch: Batch) -> None:
        records = list(batch.records)
        at = next((i for i, r in enumerate(records) if _key_version(r) == self.poison), None)
        if at is None:
            await super().process(batch)
            return
        why = f"cannot apply {self.poison[0]}@{self.poison[1]}"
        if not self.report:
            raise ValueError(why)
        if at:
            await super().process(Batch(batch.shard_id, records[:at]))
        raise PartialBatchError(records[at].sequence_number, why)


def _key_version(record: ChangeRecord) -> tuple[str, int]:
    return str(record.keys["pk"]), int((record.new_image or {}).get("version", 0))


@dataclass(frozen=True)
class Entry:
    shard: str
    seq: str
    key: str
    version: int
    pid: int
    table: str = ""


def read_journal(path: Path) -> list[Entry]:
    """The records in the journal, in the order they were written; a torn last line is skipped."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    entries = []
    for line in complete.splitlines():
        row = orjson.loads(line)
        if "seq" in row:
            entries.append(
                Entry(
                    row["shard"], row["seq"], row["key"], row["version"], row["pid"], row["table"]
                )
            )
    return entries


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0
