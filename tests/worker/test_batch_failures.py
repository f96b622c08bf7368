"""What a failing batch costs, pure: a processor that names the record it failed on, halves
that find a poison record quickly, and records too old to try again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from bridge.core.backoff import Backoff
from bridge.processors.api import Batch, PartialBatchError, Processor
from bridge.processors.dead_letter import DeadLetterFile
from bridge.worker.delivery import BatchDelivery, DeliveryPolicy
from tests.sqlite.records import batch, change

QUICK = Backoff(base=0.001, cap=0.004)


def records(count: int) -> Batch:
    return batch(
        *(change("INSERT", seq, {"pk": f"k{seq}"}, {"v": seq}) for seq in range(1, count + 1))
    )


class Poisoned(Processor):
    """Fails on the batches holding a poisoned sequence number; names it when ``partial``."""

    def __init__(self, poison: set[str], *, partial: bool = False) -> None:
        self.poison = poison
        self.partial = partial
        self.calls: list[list[str]] = []
        self.applied: list[str] = []

    async def process(self, batch: Batch) -> None:
        seqs = [r.sequence_number for r in batch.records]
        self.calls.append(seqs)
        for seq in seqs:
            if seq in self.poison:
                if self.partial:
                    raise PartialBatchError(seq)
                raise ValueError(f"cannot apply {seq}")
            if self.partial:
                self.applied.append(seq)
        if not self.partial:
            self.applied += seqs


def delivery(
    processor: Processor,
    checkpoints: list[str],
    tmp_path: Path,
    *,
    bisect: bool = False,
    max_record_age: float | None = None,
    now: float = 0.0,
    reasons: list[str] | None = None,
) -> tuple[BatchDelivery, DeadLetterFile]:
    """``reasons``: gets the reason of each record given up, as the metrics do."""
    dead = DeadLetterFile(tmp_path / "dead.jsonl")
    said = reasons if reasons is not None else []

    async def checkpoint(sequence_number: str) -> None:
        checkpoints.append(sequence_number)

    policy = DeliveryPolicy(
        max_attempts=3,
        on_error="dead_letter",
        backoff=QUICK,
        bisect=bisect,
        max_record_age=max_record_age,
    )
    return (
        BatchDelivery(
            processor,
            policy,
            checkpoint=checkpoint,
            dead_letter=dead,
            on_dead_letter=said.append,
            clock=lambda: now,
        ),
        dead,
    )


def dead_seqs(dead: DeadLetterFile) -> list[str]:
    lines = dead.path.read_bytes().splitlines() if dead.path.exists() else []
    return [orjson.loads(line)["seq"] for line in lines]


async def test_a_partial_failure_checkpoints_what_came_before_and_retries_only_the_rest(
    tmp_path: Path,
) -> None:
    processor = Poisoned({"4"}, partial=True)
    checkpoints: list[str] = []
    reasons: list[str] = []
    deliver, dead = delivery(processor, checkpoints, tmp_path, reasons=reasons)
    await deliver.deliver(records(6))
    assert reasons == ["reported"]
    assert checkpoints[0] == "3"  # at once, before any retry
    assert processor.calls[1][0] == "4"  # the retry starts at the failed record
    assert processor.applied.count("1") == 1  # nothing before it is handed over again
    assert dead_seqs(dead) == ["4"]
    assert sorted(set(processor.applied), key=int) == ["1", "2", "3", "5", "6"]
    assert checkpoints[-1] == "6"


async def test_halves_find_the_poison_record_in_fewer_tries_than_one_at_a_time(
    tmp_path: Path,
) -> None:
    one_by_one, halves = Poisoned({"13"}), Poisoned({"13"})
    for processor, bisect in ((one_by_one, False), (halves, True)):
        checkpoints: list[str] = []
        reasons: list[str] = []
        (tmp_path / str(bisect)).mkdir()
        deliver, dead = delivery(
            processor, checkpoints, tmp_path / str(bisect), bisect=bisect, reasons=reasons
        )
        await deliver.deliver(records(16))
        assert dead_seqs(dead) == ["13"] and reasons == ["max_attempts"]
        assert checkpoints[-1] == "16"
        assert sorted(set(processor.applied), key=int) == [str(n) for n in range(1, 17) if n != 13]
    assert len(halves.calls) < len(one_by_one.calls)


async def test_a_record_past_max_record_age_is_given_up_after_one_try(tmp_path: Path) -> None:
    written = datetime(2026, 1, 2, tzinfo=UTC).timestamp()
    processor = Poisoned({"1"})
    checkpoints: list[str] = []
    reasons: list[str] = []
    deliver, dead = delivery(
        processor, checkpoints, tmp_path, max_record_age=3600, now=written + 7200, reasons=reasons
    )
    old = batch(change("INSERT", 1, {"pk": "k1"}, {"v": 1}, created=written))
    await deliver.deliver(old)
    assert len(processor.calls) == 1 and dead_seqs(dead) == ["1"] and checkpoints == ["1"]
    assert reasons == ["max_record_age"]
    young = Poisoned({"1"})
    deliver, _ = delivery(young, [], tmp_path, max_record_age=3600, now=written + 60)
    await deliver.deliver(old)
    assert len(young.calls) == 3  # within the age: every attempt
