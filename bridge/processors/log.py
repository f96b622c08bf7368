"""``processor.kind: log``: one structured log line per change; for trying things out."""

from __future__ import annotations

import structlog

from bridge.processors.api import Batch, EndReason, Processor

log = structlog.get_logger("bridge.processor.log")


class LogProcessor(Processor):
    def __init__(self, images: bool = True) -> None:
        self.images = images

    async def process(self, batch: Batch) -> None:
        for record in batch.records:
            fields: dict[str, object] = {"keys": record.keys, "seq": record.sequence_number}
            if self.images:
                fields["new"] = record.new_image
            log.info("change", op=record.event, shard=record.shard_id, **fields)

    async def end(self, reason: EndReason) -> None:
        log.info("shard ownership ended", shard=self.context.shard_id, reason=str(reason))
