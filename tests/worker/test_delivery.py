"""Batch delivery, pure: an unavailable destination is waited out (never dead-lettered, never
halted, never checkpointed past), while records at fault use up ``max_attempts``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.core.backoff import Backoff
from bridge.processors.api import Batch, LeaseLostError, Processor, RetriableError, is_retriable
from bridge.processors.dead_letter import DeadLetterFile
from bridge.processors.kafka import KafkaDeliveryError, MessageTooLargeError
from bridge.worker.delivery import (
    BatchDelivery,
    DeliveryInterruptedError,
    DeliveryPolicy,
    ProcessingHaltedError,
)
from tests.sqlite.records import batch, change

QUICK = Backoff(base=0.001, cap=0.004)


class Scripted(Processor):
    """Fails with the scripted errors, one per call, then succeeds."""

    def __init__(self, errors: list[Exception | None], *, then: Exception | None = None) -> None:
        self.errors = list(errors)
        self.then = then
        self.calls = 0
        self.called = asyncio.Event()

    async def process(self, batch: Batch) -> None:
        self.calls += 1
        self.called.set()
        error = self.errors.pop(0) if self.errors else self.then
        if error is not None:
            raise error


class Outage(RetriableError):
    pass


def three() -> Batch:
    return batch(*(change("INSERT", seq, {"pk": f"k{seq}"}, {"v": seq}) for seq in (1, 2, 3)))


def delivery(
    processor: Processor,
    checkpoints: list[str],
    *,
    max_attempts: int = 2,
    dead_letter: DeadLetterFile | None = None,
    stopping: asyncio.Event | None = None,
    ensure_valid: Callable[[], None] = lambda: None,
) -> BatchDelivery:
    async def checkpoint(sequence_number: str) -> None:
        checkpoints.append(sequence_number)

    return BatchDelivery(
        processor,
        DeliveryPolicy(
            max_attempts=max_attempts,
            on_error="dead_letter" if dead_letter else "stop",
            backoff=QUICK,
        ),
        checkpoint=checkpoint,
        dead_letter=dead_letter,
        stopping=stopping,
        ensure_valid=ensure_valid,
    )


def test_the_kafka_errors_say_whether_the_broker_or_the_record_is_at_fault() -> None:
    assert is_retriable(KafkaDeliveryError("broker down"))
    assert is_retriable(Outage())
    assert not is_retriable(MessageTooLargeError("too large"))
    assert not is_retriable(ValueError("bad record"))


async def test_an_outage_longer_than_max_attempts_is_waited_out_not_dead_lettered(
    tmp_path: Path,
) -> None:
    dead = DeadLetterFile(tmp_path / "dead.jsonl")
    processor = Scripted([Outage("down")] * 12)
    checkpoints: list[str] = []
    await delivery(processor, checkpoints, max_attempts=2, dead_letter=dead).deliver(three())
    assert processor.calls == 13
    assert checkpoints == ["3"], "one checkpoint, after the batch finally went through"
    assert not dead.path.exists() or dead.path.read_text() == ""


async def test_outage_failures_do_not_count_toward_max_attempts() -> None:
    bad = ValueError("record at fault")
    processor = Scripted([Outage(), bad, Outage(), Outage(), bad, Outage()])
    checkpoints: list[str] = []
    await delivery(processor, checkpoints, max_attempts=3).deliver(three())
    assert checkpoints == ["3"]


async def test_records_at_fault_still_stop_the_shard_after_max_attempts() -> None:
    processor = Scripted([], then=ValueError("poison"))
    checkpoints: list[str] = []
    with pytest.raises(ProcessingHaltedError):
        await delivery(processor, checkpoints, max_attempts=2).deliver(
            batch(change("INSERT", 7, {"pk": "a"}, {}))
        )
    assert processor.calls == 2
    assert checkpoints == []


async def test_a_stop_during_an_outage_abandons_the_batch_without_a_checkpoint() -> None:
    stopping = asyncio.Event()
    processor = Scripted([], then=Outage("down for good"))
    checkpoints: list[str] = []
    task = asyncio.create_task(delivery(processor, checkpoints, stopping=stopping).deliver(three()))
    while processor.calls < 5:
        processor.called.clear()
        await processor.called.wait()
    stopping.set()
    with pytest.raises(DeliveryInterruptedError):
        await asyncio.wait_for(task, 5)
    assert checkpoints == []


async def test_a_lease_lost_during_an_outage_ends_the_retries_without_a_checkpoint() -> None:
    processor = Scripted([], then=Outage("down"))
    checkpoints: list[str] = []

    def ensure_valid() -> None:
        if processor.calls >= 4:
            raise LeaseLostError("shard moved to another worker")

    with pytest.raises(LeaseLostError):
        await asyncio.wait_for(
            delivery(processor, checkpoints, ensure_valid=ensure_valid).deliver(three()), 5
        )
    assert processor.calls == 4
    assert checkpoints == []
