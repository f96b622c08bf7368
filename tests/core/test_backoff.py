"""Retry and polling delays: full jitter under a cap, and adaptive idle polling."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.backoff import Backoff, PollPacer


@given(
    base=st.floats(0.001, 10),
    cap=st.floats(10, 120),
    attempt=st.integers(0, 10_000),
    seed=st.integers(),
)
def test_backoff_delay_stays_between_zero_and_the_capped_ceiling(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    backoff = Backoff(base, cap)
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt, 64))


def test_backoff_ceiling_doubles_then_stops_at_the_cap() -> None:
    backoff = Backoff(0.1, 60.0)
    ceilings = [backoff.ceiling(n) for n in range(12)]
    assert ceilings[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert ceilings[-1] == 60.0
    assert ceilings == sorted(ceilings)


def test_backoff_is_jittered_not_fixed() -> None:
    backoff = Backoff(1.0, 60.0)
    rng = random.Random(7)
    delays = {round(backoff.delay(5, rng), 6) for _ in range(50)}
    assert len(delays) > 40


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(0.0, 1.0)


def test_pacer_catches_up_at_once_keeps_pace_when_caught_up_and_slows_down_when_idle() -> None:
    pacer = PollPacer(interval=0.25, idle_interval=2.0)
    assert pacer.after_read(1000, behind=True) == 0.0
    assert pacer.after_read(10) == 0.25  # caught up: the next records are not written yet
    idle = [pacer.after_read(0) for _ in range(6)]
    assert idle == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert pacer.after_read(1) == 0.25
    assert pacer.after_read(0) == 0.25


@given(reads=st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=200))
def test_pacer_delay_is_bounded_and_never_below_the_interval_unless_behind(
    reads: list[tuple[int, bool]],
) -> None:
    pacer = PollPacer(interval=0.1, idle_interval=5.0)
    for records, behind in reads:
        delay = pacer.after_read(records, behind=behind)
        if records and behind:
            assert delay == 0.0
        else:
            assert 0.1 <= delay <= 5.0
