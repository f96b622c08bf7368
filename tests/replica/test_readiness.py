"""Readiness of a follower, judged from its partitions' progress; times passed in."""

from __future__ import annotations

from bridge.replica._readiness import FollowerReadiness

LAG = 2.0


def following(now: float = 100.0) -> FollowerReadiness:
    state = FollowerReadiness(ready_lag=LAG, stall_after=5.0, broker="k:9092", phase="streaming")
    state.broker_answered(now)
    return state


def test_not_ready_before_the_broker_answered_or_while_starting() -> None:
    state = FollowerReadiness(broker="k:9092")
    assert state.verdict(0.0, 0) == (False, "starting")
    state.phase = "streaming"
    assert state.verdict(0.0, 0) == (False, "kafka k:9092 not reached yet")


def test_ready_once_every_partition_is_read_to_its_end() -> None:
    state = following()
    state.assigned(0, 0, None)
    state.assigned(1, 0, None)
    assert state.verdict(100.0, 0)[0] is False  # ends not known yet
    state.high_watermark(0, 10)
    state.reached_end(1, 0)  # an empty partition
    ready, reason = state.verdict(100.0, 0)
    assert not ready and reason == "partition 0: 10 messages behind"
    for offset in range(10):
        state.applied(0, offset, message_ms=1_000)  # old messages: not fresh by time
    assert state.verdict(100.0, 50_000) == (True, "ready")
    assert state.lag_ms(50_000) == 0.0


def test_behind_the_end_but_fresh_is_ready_and_stale_is_not() -> None:
    state = following()
    state.assigned(0, 0, None)
    state.high_watermark(0, 100)
    state.applied(0, 49, message_ms=10_000)
    assert state.verdict(100.0, 11_000) == (True, "ready")  # newest applied is 1 s old
    ready, reason = state.verdict(100.0, 13_000)  # no progress: it ages past ready_lag
    assert not ready and reason == "partition 0: 50 messages behind, newest applied 3.0s old"
    assert state.lag_ms(13_000) == 3000.0


def test_a_silent_broker_makes_it_not_ready_and_an_answer_ready_again() -> None:
    state = following(now=100.0)
    state.assigned(0, 5, 1_000)
    state.reached_end(0, 5)
    assert state.verdict(104.0, 0)[0]
    state.broker_failed("kafka k:9092: connection refused")
    assert state.verdict(104.0, 0)[0]  # within stall_after
    ready, reason = state.verdict(106.0, 0)
    assert not ready and reason == "kafka broker silent for 6s: kafka k:9092: connection refused"
    state.broker_answered(106.5)
    assert state.verdict(107.0, 0) == (True, "ready")


def test_a_missing_topic_or_no_partitions_is_not_ready() -> None:
    state = following()
    assert state.verdict(100.0, 0) == (False, "no partitions assigned")
    state.topic_error = "topic x does not exist on k:9092"
    assert state.verdict(100.0, 0) == (False, "topic x does not exist on k:9092")


def test_a_restart_resumes_position_and_newest_message_time() -> None:
    state = following()
    state.assigned(0, 11, message_ms=5_000)
    state.high_watermark(0, 11)
    assert state.verdict(100.0, 60_000) == (True, "ready")
    assert state.watermark_ms() == 5_000
