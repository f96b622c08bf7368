"""Scenarios 2 and 3: a worker frozen (SIGSTOP) past its leases, then thawed (SIGCONT).

While it is frozen its leases expire and move on; when it wakes up it still holds batches
read before the freeze. Whatever it writes to Kafka then is a duplicate inside the pause's
window; what it must never do is move a checkpoint (every checkpoint write is conditional on
owner and lease counter): the lease table's checkpoints never go backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bridge.leases.leader import LOCK_KEY
from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding, busiest, check, taken_over


@pytest.mark.slow
def test_shard_owner_paused_twice_its_lease_is_fenced(chaos: Callable[..., ChaosRun]) -> None:
    run = chaos("SIGSTOP owner 2x lease (kafka)", rotate_records=400)
    app = run.kafka_app(after_delivery=0.2)
    for name in ("w1", "w2", "w3"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    victim = busiest(app)
    worker = app.workers[victim]
    with run.fault("SIGSTOP", victim, linger=run.timing.lease_duration + 2):
        paused = worker.pause()
        taken_over(run, app, victim)
        run.wait_for(
            lambda: time.monotonic() - paused >= 2 * run.timing.lease_duration,
            30,
            "two lease durations of pause",
        )
        worker.resume()
        run.wait_for(
            lambda: any(e.get("event") == "lease lost" for e in worker.log_events()),
            30,
            f"{victim} noticing that its leases are gone",
        )
    run.wait_for_writes(200)
    check(run)
    assert not app.history.backwards, f"checkpoints moved backwards: {app.history.backwards}"


@pytest.mark.slow
def test_leader_paused_past_its_lock_lease(chaos: Callable[..., ChaosRun]) -> None:
    """The leader freezes while shards keep rotating: another worker must take the lock and
    lease the new shards; the old leader, thawed, must not undo anything."""
    run = chaos("leader paused past lock (kafka)", rotate_records=150)
    app = run.kafka_app()
    for name in ("w1", "w2", "w3"):
        app.start_worker(name)
    run.start()
    lock_table = f"{app.lease_table}-coordination"

    def current_leader() -> str | None:
        item = run.ddb.get_item(
            TableName=lock_table,
            Key={"lock_key": {"S": LOCK_KEY}, "sort_key": {"S": "-"}},
            ConsistentRead=True,
        ).get("Item")
        return item["owner_name"]["S"] if item else None

    run.wait_for(lambda: current_leader() in app.workers, 30, "a leader")
    old = current_leader()
    assert old is not None
    worker = app.workers[old]
    with run.fault("SIGSTOP leader", old, linger=run.timing.lease_duration + 2):
        worker.pause()
        run.wait_for(
            lambda: current_leader() not in (None, old), 60, "another worker taking the lock"
        )
        before = set(app.owners())
        run.local.rotate(run.table)  # new shards only a leader can lease
        run.wait_for(
            lambda: any(
                owner not in (None, old) for key, owner in app.owners().items() if key not in before
            ),
            60,
            "the new leader leasing the new shards",
        )
        worker.resume()
    run.wait_for_writes(200)
    check(run)
    assert not app.history.backwards, f"checkpoints moved backwards: {app.history.backwards}"
