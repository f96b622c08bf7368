"""The Kafka processor, slowed down after each acknowledged batch: the time between "the sink
has it" and "the checkpoint says so" is widened, so a kill lands there more often than not.

``processor.kind: tests.chaos.slow_kafka:SlowKafkaFactory`` with the Kafka options plus
``before_delivery`` and ``after_delivery`` (seconds: a batch in hand before it is sent,
and in the topic before its checkpoint). With ``phase_dir``, each batch marks its phase
there as an empty file ``<pid>-<shard>.in-hand`` or ``<pid>-<shard>.sent`` while it lasts,
so a test can kill a worker at the phase it means to, rather than at a random one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bridge.processors.api import Batch
from bridge.processors.kafka import KafkaProcessorFactory
from bridge.processors.kafka._processor import KafkaProcessor


class SlowKafkaFactory(KafkaProcessorFactory):
    def __init__(
        self, table: str, app: str = "bridge", worker_id: str = "", **options: Any
    ) -> None:
        self.before_delivery = float(options.pop("before_delivery", 0.0))
        self.after_delivery = float(options.pop("after_delivery", 0.0))
        phase_dir = options.pop("phase_dir", None)
        self.phase_dir = Path(phase_dir) if phase_dir else None
        super().__init__(table, app, worker_id, **options)

    def create(self, shard_id: str) -> KafkaProcessor:
        return SlowKafkaProcessor(self, shard_id)


class SlowKafkaProcessor(KafkaProcessor):
    factory: SlowKafkaFactory

    async def process(self, batch: Batch) -> None:
        with self._phase(batch, "in-hand"):
            await asyncio.sleep(self.factory.before_delivery)  # in hand, not yet sent
        await super().process(batch)  # in the topic, acknowledged
        with self._phase(batch, "sent"):
            await asyncio.sleep(self.factory.after_delivery)  # ... and not yet checkpointed

    @contextlib.contextmanager
    def _phase(self, batch: Batch, phase: str) -> Iterator[None]:
        if self.factory.phase_dir is None:
            yield
            return
        mark = self.factory.phase_dir / f"{os.getpid()}-{batch.shard_id}.{phase}"
        mark.touch()
        try:
            yield
        finally:
            mark.unlink(missing_ok=True)
