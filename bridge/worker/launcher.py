"""Start a consumer for a lease this worker holds: its context, processor, delivery, settings.

The wiring of one shard's reading lives here, apart from the decisions of when to start it
(the coordinator) and how it reads (``ShardConsumer``): everything a consumer needs comes from
the configuration and the worker's shared pieces, and nothing of it is decided twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aioboto3

from bridge.aws import client_kwargs
from bridge.config import BridgeConfig
from bridge.core.backoff import Backoff
from bridge.core.snapshot_plan import cutoff_of, segment_of
from bridge.filters import ChangeFilter
from bridge.processors.api import EndReason, ShardContext
from bridge.streams.reader import StreamReader
from bridge.worker.dead_letters import dead_letters
from bridge.worker.delivery import BatchDelivery, DeliveryPolicy
from bridge.worker.lanes import LaneDelivery
from bridge.worker.scan_progress import ScanProgress
from bridge.worker.segment_scanner import ScanSettings, SegmentScanner
from bridge.worker.shard_consumer import ConsumerSettings, ShardConsumer
from bridge.worker.table_sources import TableSources
from bridge.worker.tenures import Tenure


class ConsumerLauncher:
    def __init__(
        self,
        config: BridgeConfig,
        *,
        worker_id: str,
        reader: StreamReader,
        sources: TableSources,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.config = config
        self.worker_id = worker_id
        self.reader = reader
        self.sources = sources
        self.clock = clock
        self.rng = rng
        processor = config.processor
        age = processor.max_record_age
        self.policy = DeliveryPolicy(
            max_attempts=processor.max_attempts,
            on_error=processor.on_error,
            backoff=Backoff(base=0.1, cap=5.0),
            bisect=processor.bisect_on_error,
            max_record_age=None if age is None else age.total_seconds(),
        )
        self.dead_letter = dead_letters(config) if processor.on_error == "dead_letter" else None
        self._progress: dict[str, ScanProgress] = {}
        polling = config.polling
        self.settings = ConsumerSettings(
            initial=config.source.initial_position,
            max_records=polling.max_records,
            interval=polling.interval.total_seconds(),
            idle_interval=polling.idle_interval.total_seconds(),
            on_trimmed=config.source.on_trimmed,
            roundtrip_attribute=config.metrics.roundtrip_attribute,
            retention_s=config.source.retention.total_seconds(),
            keep=ChangeFilter.from_config(config.filter),
        )

    def launch(
        self,
        tenure: Tenure,
        *,
        before_shard_end: Callable[[], Awaitable[None]],
        readers_paused: Callable[[int], Awaitable[None]] | None = None,
    ) -> asyncio.Task[EndReason]:
        """Start reading the tenure's shard (or scanning its snapshot segment); the task ends
        with the reason the reading ended."""
        holder = tenure.holder
        key = holder.key
        source = self.sources.locate(key)
        if source is None:
            raise LookupError(f"lease {key} is not for a table of this application")
        metrics = source.metrics
        # The processors and the Streams API are told the shard's id, not its lease key.
        name = source.keys.name_of(key) or key
        context = ShardContext(
            shard_id=name,
            table=source.table,
            stream_arn=source.stream_arn,
            worker_id=self.worker_id,
            checkpointer=holder,
            parent_shard_ids=holder.lease.parents,
        )
        processor = source.factory.create(name)

        dead_kind = self.dead_letter.kind if self.dead_letter else "none"

        def delivery_to(checkpoint: Callable[[str], Awaitable[None]]) -> BatchDelivery:
            return BatchDelivery(
                processor,
                self.policy,
                checkpoint=checkpoint,
                dead_letter=self.dead_letter,
                on_dead_letter=lambda reason: metrics.dead_letter(dead_kind, reason).inc(),
                on_retry=metrics.errors_transient.inc,
                stopping=tenure.stop,
                ensure_valid=holder.ensure_valid,
                rng=self.rng,
            )

        delivery = delivery_to(holder.checkpoint)
        segment = segment_of(key)
        if segment is not None:
            progress = self._progress.setdefault(source.table, ScanProgress(source.table))
            scanner = SegmentScanner(
                context=context,
                segment=segment,
                holder=holder,
                processor=processor,
                delivery=delivery,
                settings=ScanSettings(
                    table=source.table,
                    page_items=source.source.bootstrap.page_items,
                    retention=source.source.retention.total_seconds(),
                ),
                dynamodb=self._scan_client,
                metrics=metrics,
                stop=tenure.stop,
                on_items=progress.advance,
                readers_paused=readers_paused,
                clock=self.clock,
                rng=self.rng,
            )
            tenure.consumer = scanner
            tenure.task = asyncio.create_task(progress.around(scanner.run()), name=key)
            return tenure.task
        lanes = self.config.processor.parallelism
        consumer = ShardConsumer(
            context=context,
            reader=self.reader,
            holder=holder,
            processor=processor,
            delivery=(
                LaneDelivery(delivery_to, lanes, holder.checkpoint, busy=metrics.lanes_busy)
                if lanes > 1
                else delivery
            ),
            settings=self.settings,
            metrics=metrics,
            stop=tenure.stop,
            hand_off=tenure.hand_off,
            rng=self.rng,
            before_shard_end=before_shard_end,
            skip_before_ms=cutoff_of(holder.lease.parents),
            clock=self.clock,
        )
        tenure.consumer = consumer
        tenure.reads_shard = True
        tenure.task = asyncio.create_task(consumer.run(), name=f"shard-{key}")
        return tenure.task

    def _scan_client(self) -> AbstractAsyncContextManager[Any]:
        client: AbstractAsyncContextManager[Any] = aioboto3.Session().client(
            "dynamodb", **client_kwargs(self.config.source)
        )
        return client
