"""Worker readiness from a reading of its state, time passed in: each reason it is not ready,
in the order an operator should see them."""

from __future__ import annotations

import pytest

from bridge.core.readiness import Readiness, ReadinessLimits, WorkerReading, judge

LIMITS = ReadinessLimits.of(ready_lag=2.0, lease_duration=6.0, take_interval=0.5, idle_interval=1)


@pytest.mark.parametrize(
    ("reading", "ready", "reason"),
    [
        (WorkerReading(now=100, last_take_ok=99), True, "ready"),
        (WorkerReading(now=100, fatal="boom", last_take_ok=99), False, "failed: boom"),
        (WorkerReading(now=100, stopping=True, last_take_ok=99), False, "stopping"),
        (WorkerReading(now=100), False, "starting: lease table not read yet"),
        (WorkerReading(now=100, last_take_ok=90), False, "lease table not read for 10s"),
        (
            WorkerReading(now=100, last_take_ok=99, last_reads={"a": 99, "b": 80}),
            False,
            "shard b not read for 20s",
        ),
        (WorkerReading(now=100, last_take_ok=99, lag_ms=2500), False, "lag 2500 ms over 2000 ms"),
        (
            WorkerReading(now=100, last_take_ok=99, processor=Readiness(False, "bootstrapping")),
            False,
            "processor: bootstrapping",
        ),
        (
            WorkerReading(now=100, last_take_ok=99, processor=Readiness(True, "fresh")),
            True,
            "ready",
        ),
    ],
)
def test_readiness_names_why_not(reading: WorkerReading, ready: bool, reason: str) -> None:
    assert judge(reading, LIMITS) == Readiness(ready, reason)


def test_patience_covers_a_lease_and_idle_polls() -> None:
    limits = ReadinessLimits.of(ready_lag=1, lease_duration=2, take_interval=1, idle_interval=5)
    assert (limits.table_patience, limits.read_patience) == (3, 15)
