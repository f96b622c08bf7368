"""The Kafka processor, slowed down after each acknowledged batch: the time between "the sink
has it" and "the checkpoint says so" is widened, so a kill lands there more often than not.

``processor.kind: tests.chaos.slow_kafka:SlowKafkaFactory`` with the Kafka options plus
``before_delivery`` and ``after_delivery`` (seconds: a batch in hand before it is sent,
and in the topic before its checkpoint).
"""

from __future__ import annotations

import asyncio
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
        super().__init__(table, app, worker_id, **options)

    def create(self, shard_id: str) -> KafkaProcessor:
        return SlowKafkaProcessor(self, shard_id)


class SlowKafkaProcessor(KafkaProcessor):
    factory: SlowKafkaFactory

    async def process(self, batch: Batch) -> None:
        await asyncio.sleep(self.factory.before_delivery)  # in hand, not yet sent
        await super().process(batch)  # in the topic, acknowledged
        await asyncio.sleep(self.factory.after_delivery)  # ... and not yet checkpointed
