"""A processor for tests: appends every record it is handed to a JSON-lines file.

Each line is flushed before ``process`` returns, so after a SIGKILL the file holds exactly what
the processor had finished (what the runtime may have checkpointed) plus possibly one more batch.
Optional ``poison_key``: raise on every record of that key, to test ``on_error``.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from bridge.processors.api import Batch, EndReason, Processor


class RecordingProcessor(Processor):
    def __init__(self, path: str, poison_key: str | None = None) -> None:
        self.path = Path(path)
        self.poison_key = poison_key

    async def process(self, batch: Batch) -> None:
        lines = []
        for record in batch.records:
            key = str(next(iter(record.keys.values())))
            if key == self.poison_key:
                raise ValueError(f"poison record {key}")
            image = record.new_image or {}
            lines.append(
                orjson.dumps(
                    {
                        "shard": record.shard_id,
                        "seq": record.sequence_number,
                        "event": record.event,
                        "key": key,
                        "version": int(image.get("version", 0)),
                        "pid": os.getpid(),
                    }
                )
            )
        with self.path.open("ab") as handle:
            handle.write(b"\n".join(lines) + b"\n")
            handle.flush()

    async def end(self, reason: EndReason) -> None:
        with self.path.open("ab") as handle:
            handle.write(orjson.dumps({"end": str(reason), "shard": self.context.shard_id}) + b"\n")


def read_records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [row for row in rows if "seq" in row]


def read_ends(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [row for row in rows if "end" in row]
