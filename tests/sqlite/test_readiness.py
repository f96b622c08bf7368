"""When a replica may be read: caught up, fresh, and not bootstrapping."""

from __future__ import annotations

from bridge.processors.sqlite.readiness import ReadinessTracker


def test_not_ready_until_caught_up_then_ready_then_stalled() -> None:
    tracker = ReadinessTracker(ready_lag=2.0, stall_after=30.0)
    assert tracker.verdict(0.0) == (False, "no shards being read")
    tracker.started("s1", now=0.0)
    tracker.started("s2", now=0.0)
    assert tracker.verdict(0.0) == (False, "catching up")
    tracker.batch("s1", created_at=1000.0, wall_now=1500.0)  # 500 s behind
    tracker.caught_up("s2", now=1.0)
    ready, reason = tracker.verdict(1.0)
    assert not ready and reason.startswith("lag 500000 ms")
    tracker.batch("s1", created_at=1499.5, wall_now=1500.0)
    assert tracker.verdict(2.0) == (True, "ready")
    # s2's consumer stops polling: no batches, no empty reads
    tracker.active("s1", now=40.0)
    ready, reason = tracker.verdict(40.0)
    assert not ready and reason == "shard s2 silent for 39s"


def test_a_child_shard_not_yet_read_does_not_flap_a_ready_replica() -> None:
    tracker = ReadinessTracker(ready_lag=2.0, stall_after=30.0)
    tracker.started("parent", now=0.0)
    tracker.caught_up("parent", now=0.0)
    assert tracker.verdict(0.0)[0]
    tracker.ended("parent", now=1.0, shard_end=True)
    assert tracker.verdict(1.0)[0]  # handing over to the children
    tracker.started("child", now=1.0)
    assert tracker.verdict(1.0) == (False, "catching up")  # nothing known at all yet
    tracker.started("sibling", now=1.0)
    tracker.caught_up("sibling", now=1.0)
    assert tracker.verdict(1.5) == (True, "ready")


def test_bootstrapping_is_never_ready() -> None:
    tracker = ReadinessTracker()
    tracker.started("s1", now=0.0)
    tracker.caught_up("s1", now=0.0)
    tracker.phase = "bootstrapping"
    assert tracker.verdict(0.0) == (False, "bootstrapping")
