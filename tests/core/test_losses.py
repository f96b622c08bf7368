"""The loss ledger: a gap is measured when its far side is seen, and reported exactly once,
when a checkpoint past it lands; never when nothing could be measured."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.losses import Loss, LossLedger


def test_a_gap_is_reported_once_a_checkpoint_past_it_lands() -> None:
    ledger = LossLedger()
    ledger.gap_found("100")
    assert ledger.measuring
    ledger.first_available("105")
    assert not ledger.measuring
    assert ledger.checkpointed() == Loss(4, "100")
    assert ledger.checkpointed() is None  # once


def test_nothing_is_reported_without_a_gap_or_without_a_position() -> None:
    ledger = LossLedger()
    assert ledger.checkpointed() is None
    ledger.gap_found(None)  # nothing read yet: no position to count from
    assert not ledger.measuring
    ledger.first_available("105")
    assert ledger.checkpointed() is None


def test_a_gap_that_runs_to_the_shard_end_counts_every_record_up_to_it() -> None:
    ledger = LossLedger()
    ledger.gap_found("10")
    ledger.ran_to_shard_end("20")
    assert ledger.checkpointed() == Loss(10, "10")


def test_a_shard_trimmed_away_whole_is_not_counted() -> None:
    ledger = LossLedger()
    ledger.gap_found("10")
    ledger.forget()
    ledger.first_available("99")
    assert ledger.checkpointed() is None


@given(after=st.integers(0, 10**30), gap=st.integers(0, 10**6))
def test_the_count_is_the_records_between_the_last_read_and_the_first_left(
    after: int, gap: int
) -> None:
    ledger = LossLedger()
    ledger.gap_found(str(after))
    ledger.first_available(str(after + gap + 1))
    loss = ledger.checkpointed()
    assert (loss.count if loss else 0) == gap
