"""Where reading starts and resumes: checkpoints, initial position, expiry and trimming."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.positions import (
    IteratorRequest,
    TrimAction,
    after_trim,
    records_lost,
    resume_after_expiry,
    start_position,
)

sequence_numbers = st.integers(1, 10**24).map(str)


@pytest.mark.parametrize(
    ("checkpoint", "initial", "has_parents", "expected"),
    [
        ("SHARD_END", "trim_horizon", False, None),
        ("SHARD_END", "latest", True, None),
        ("TRIM_HORIZON", "latest", False, IteratorRequest("TRIM_HORIZON")),
        ("LATEST", "trim_horizon", False, IteratorRequest("LATEST")),
        ("000123", "latest", True, IteratorRequest("AFTER_SEQUENCE_NUMBER", "000123")),
        (None, "trim_horizon", False, IteratorRequest("TRIM_HORIZON")),
        (None, "latest", False, IteratorRequest("LATEST")),
        # a child of a shard we read starts at its first record, whatever the initial position
        (None, "latest", True, IteratorRequest("TRIM_HORIZON")),
    ],
)
def test_start_position(
    checkpoint: str | None, initial: str, has_parents: bool, expected: IteratorRequest | None
) -> None:
    assert start_position(checkpoint, initial, has_parents) == expected  # type: ignore[arg-type]


def test_an_unknown_checkpoint_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="not a checkpoint"):
        start_position("AT_TIMESTAMP", "trim_horizon", False)


def test_iterator_request_kind_and_sequence_number_must_agree() -> None:
    with pytest.raises(ValueError):
        IteratorRequest("AFTER_SEQUENCE_NUMBER")
    with pytest.raises(ValueError):
        IteratorRequest("TRIM_HORIZON", "1")


@given(last=sequence_numbers, checkpoint=st.one_of(st.none(), sequence_numbers))
def test_expiry_resumes_right_after_the_last_record_read(last: str, checkpoint: str | None) -> None:
    request = resume_after_expiry(last, checkpoint, "latest", has_parents=False)
    assert request == IteratorRequest("AFTER_SEQUENCE_NUMBER", last)


def test_expiry_before_anything_was_read_starts_over_from_the_checkpoint() -> None:
    assert resume_after_expiry(None, "42", "trim_horizon", False) == IteratorRequest(
        "AFTER_SEQUENCE_NUMBER", "42"
    )
    assert resume_after_expiry(None, None, "trim_horizon", True) == IteratorRequest("TRIM_HORIZON")


def test_trim_with_fail_stops_and_with_resume_reads_from_the_oldest_record() -> None:
    failed = after_trim("100", "fail")
    assert failed.action is TrimAction.FAIL and failed.retry_from is None
    assert failed.lost_after == "100"
    resumed = after_trim("100", "resume")
    assert resumed.action is TrimAction.RESUME
    assert resumed.retry_from == IteratorRequest("TRIM_HORIZON")
    assert after_trim("TRIM_HORIZON", "resume").lost_after is None


@given(after=st.integers(0, 10**20), gap=st.integers(0, 10**6))
def test_records_lost_is_the_sequence_gap(after: int, gap: int) -> None:
    assert records_lost(str(after), str(after + 1 + gap)) == gap


def test_records_lost_is_zero_without_a_position() -> None:
    assert records_lost(None, "500") == 0
    assert records_lost("LATEST", "500") == 0
    assert records_lost("600", "500") == 0
