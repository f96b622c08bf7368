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
    # Past the pause's window: a thawed owner still writing (fencing or its own deadline
    # ignored) makes duplicates no window explains.
    run.hold(run.timing.lease_duration + 5, "past the pause's window")
    run.wait_for_writes(200)
    check(run)
    assert not app.history.backwards, f"checkpoints moved backwards: {app.history.backwards}"


@pytest.mark.slow
def test_leader_paused_past_its_lock_lease(chaos: Callable[..., ChaosRun]) -> None:
    """The leader freezes while shards keep rotating: another worker must take the lock, lease
    the new shards and run the shard sync from then on; the old leader, thawed, must notice
    that it lost the lock, stop syncing and not undo anything.

    Children of a shard read to its end are leased by its reader, so new shards get leases
    without any leader: who syncs is read from the workers' logs (``shards synced``, one line
    per sync, at debug level when nothing changed)."""
    run = chaos("leader paused past lock (kafka)", rotate_records=150)
    app = run.kafka_app()
    for name in ("w1", "w2", "w3"):
        app.start_worker(name, env={"BRIDGE_LOG_LEVEL": "debug"})
    run.start()
    lock_table = f"{app.lease_table}-coordination"
    synced, became, lost = (
        "shards synced",
        "became leader: this worker syncs shards",
        "leadership lost: another worker syncs shards now",
    )

    def current_leader() -> str | None:
        item = run.ddb.get_item(
            TableName=lock_table,
            Key={"lock_key": {"S": LOCK_KEY}, "sort_key": {"S": "-"}},
            ConsistentRead=True,
        ).get("Item")
        return item["owner_name"]["S"] if item else None

    def events(name: str, since: int = 0) -> list[str]:
        """The events of ``name``'s log, from its ``since``-th line."""
        return [str(e.get("event")) for e in app.workers[name].log_events()[since:]]

    run.wait_for(lambda: current_leader() in app.workers, 30, "a leader")
    old = current_leader()
    assert old is not None
    worker = app.workers[old]
    run.wait_for(lambda: synced in events(old), 10, f"the leader {old} syncing shards")
    with run.fault("SIGSTOP leader", old, linger=run.timing.lease_duration + 2):
        worker.pause()
        run.wait_for(
            lambda: current_leader() not in (None, old), 60, "another worker taking the lock"
        )
        new = current_leader()
        assert new is not None
        taken = {name: len(app.workers[name].log_events()) for name in app.workers}
        before = set(app.owners())
        run.local.rotate(run.table)  # new shards, leased by their parents' readers
        rotated = len(app.workers[new].log_events())
        run.wait_for(
            lambda: any(
                owner not in (None, old) for key, owner in app.owners().items() if key not in before
            ),
            60,
            "the new leader leasing the new shards",
        )
        run.wait_for(
            lambda: became in events(new) and synced in events(new, rotated),
            2 * run.timing.shard_sync_interval + 5,
            f"the new leader {new} syncing shards since the rotation",
        )
        frozen = len(worker.log_events())  # nothing is logged while it is stopped
        led = len(app.workers[new].log_events())
        worker.resume()
        thawed = time.monotonic()
        run.wait_for(
            lambda: lost in events(old, frozen), 10, f"{old}, thawed, noticing its lock is gone"
        )
    run.wait_for_writes(200)
    run.hold(
        max(0.0, thawed + 2 * run.timing.shard_sync_interval + 1 - time.monotonic()),
        "two shard sync intervals since the thaw",
    )
    # One leader syncs, the new one: the old one at most once as it wakes up (a sync begun
    # before it saw the lock gone), the third never.
    assert current_leader() == new, f"the lock moved again, to {current_leader()}"
    stale = events(old, frozen).count(synced)
    assert stale <= 1, f"{old} synced shards {stale} times after its thaw, without the lock"
    for name in app.workers:
        if name not in (old, new):
            assert synced not in events(name, taken[name]), f"{name} synced shards, not leading"
    assert synced in events(new, led), f"{new} stopped syncing shards after the thaw"
    check(run)
    assert not app.history.backwards, f"checkpoints moved backwards: {app.history.backwards}"
