"""Scenario 1: kill -9 a worker between the sink write and the checkpoint.

The Kafka processor is slowed down after each acknowledged batch (``after_delivery``), so at
the moment of the kill the victim has batches in the topic that its checkpoints do not cover
yet: their next owner must deliver them again (duplicates inside the kill's window), and
nothing may be lost or reordered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding, busiest, taken_over


@pytest.mark.slow  # in CI's chaos step with the other scenarios (scripts/chaos.py)
def test_kill_9_mid_batch_loses_nothing(chaos: Callable[..., ChaosRun]) -> None:
    """The shortest scenario (about 20 s): a kill while one batch is in hand and another is
    in the topic but not yet checkpointed."""
    run = chaos("kill-9 mid-batch (kafka)", rotate_records=400)
    # A batch spends 0.1 s in hand before it is sent and 0.4 s in the topic before its
    # checkpoint; the kill waits for a moment when the victim has one shard's batch in hand
    # (a checkpoint written before delivery would lose it) and another's in the topic but
    # not yet checkpointed (the next owner must send it again: duplicates in the window).
    app = run.kafka_app(before_delivery=0.1, after_delivery=0.4)
    for name in ("w1", "w2"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    run.wait_for_writes(120)  # past the backlog: small batches
    victim = busiest(app)

    def both_phases() -> bool:
        phases = run.phases_of(app.workers[victim])
        return bool(phases.get("in-hand")) and bool(phases.get("sent"))

    run.wait_for(both_phases, 30, f"{victim} with one batch in hand and one unacknowledged", 0.002)
    with run.fault("SIGKILL", victim):
        app.workers[victim].kill()
    taken_over(run, app, victim)
    run.wait_for_writes(200)
    verdict = run.finish()
    print("\n" + verdict.explain())
    assert verdict.ok, verdict.explain()


@pytest.mark.slow
def test_kill_9_repeatedly_with_restarts(chaos: Callable[..., ChaosRun]) -> None:
    """Three kills of the busiest worker, each restarted under the same name."""
    run = chaos("kill-9 x3 + restarts (kafka)", rotate_records=300)
    app = run.kafka_app(after_delivery=0.2)
    for name in ("w1", "w2", "w3"):
        app.start_worker(name)
    run.start()
    for _ in range(3):
        all_holding(run, app)
        victim = busiest(app)
        with run.fault("SIGKILL", victim):
            app.workers[victim].kill()
        taken_over(run, app, victim)
        app.start_worker(victim)
        run.wait_for_writes(150)
    verdict = run.finish()
    print("\n" + verdict.explain())
    assert verdict.ok, verdict.explain()
