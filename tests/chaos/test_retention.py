"""Scenario 9: iterators that expire every 3 seconds, then lag pushed past retention.

Expired iterators are renewed after the last record read: nothing lost, nothing skipped.
Then every worker stops, changes pile up, and retention trims them before anyone read them:
those are lost, and the workers must say so (``records lost to retention``, counted in
``bridge_records_lost_total``). The checker counts the loss on its own from the topic: the
two counts must agree, never a silent loss.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding


@pytest.mark.slow
def test_iterator_expiry_then_lag_past_retention(chaos: Callable[..., ChaosRun]) -> None:
    # No rotation: a closed shard aged out of the stream takes the count of its lost records
    # with it (bridge then resumes with its children and can count nothing; tests/worker
    # test_trimmed pins that case down).
    run = chaos(
        "iterator expiry + retention",
        rotate_records=0,
        endpoint={"iterator_ttl": "3s", "retention": "24h"},
    )
    app = run.kafka_app(source={"on_trimmed": "resume"})
    for name in ("w1", "w2"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    # Pollers renew their iterator with every read, long before 3 s: jump the endpoint's
    # clock past that lifetime instead, so the iterators in hand expire for real.
    for _ in range(5):
        run.hold(2, "reading with fresh iterators")
        run.local.advance_clock("4s")
    run.hold(2, "resuming after the last expiry")
    expired = app.log_events("iterator expired; resuming from the last position")
    assert len(expired) >= 5, f"iterators did not expire: {len(expired)} expiry events"
    for worker in app.workers.values():
        worker.terminate()
    for worker in app.workers.values():
        assert worker.wait(60) == 0, worker.log_tail()
    run.wait_for_writes(300)  # nobody reads these
    with run.fault("retention", "trim"):
        trimmed = run.local.trim(advance="25h")
    for name in ("w1", "w2"):
        app.start_worker(name)
    run.wait_for_writes(200)
    verdict = run.finish(expect_loss=True)
    print(f"\ntrimmed: {trimmed}\n" + verdict.explain())
    assert verdict.ok, verdict.explain()
    assert verdict.lost >= 300, "the lag did not pass retention: nothing was lost"
