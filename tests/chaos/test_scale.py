"""Scenario 10: scale 3 -> 6 -> 2 workers, then a rolling restart of the two, under load.
Scale-down and restarts are SIGTERM (drain, checkpoint, release): they are not fault windows,
so only the steals of the scale-up may explain duplicates."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding, check


@pytest.mark.slow
def test_scale_3_to_6_to_2_and_a_rolling_restart(chaos: Callable[..., ChaosRun]) -> None:
    run = chaos("scale 3-6-2 + rolling restart", shards=8, rotate_records=400, rate=80)
    # Every batch waits 0.3 s between "in the topic" and its checkpoint: each SIGTERM lands
    # with batches in flight, which the drain must see through to their checkpoints before
    # it gives the leases back (or their next owners send them again, outside any window).
    app = run.kafka_app(after_delivery=0.3)
    for n in range(1, 4):
        app.start_worker(f"w{n}")
    run.start()
    all_holding(run, app)
    for n in range(4, 7):
        app.start_worker(f"w{n}")
    all_holding(run, app, within=90)
    run.wait_for_writes(200)
    for n in range(3, 7):
        worker = app.workers[f"w{n}"]
        worker.terminate()
        assert worker.wait(60) == 0, worker.log_tail()
    run.wait_for(
        lambda: set(app.owners().values()) <= {"w1", "w2", None}, 60, "two workers holding all"
    )
    run.wait_for_writes(200)
    for name in ("w1", "w2"):
        worker = app.workers[name]
        worker.terminate()
        assert worker.wait(60) == 0, worker.log_tail()
        app.start_worker(name)
        all_holding(run, app)
        run.wait_for_writes(100)
    check(run)
