"""Scenarios 13 and 14: SIGKILL in the middle of a cooperative handoff.

A lease changes hands at a batch boundary: the asker writes its name on the row ("lease asked
for"), the owner hears it ("handing lease over"), stops the shard's consumer once its batch is
checkpointed and writes the asker in as owner ("lease handed over"), and the asker starts
from that checkpoint ("lease received"). A kill can land anywhere in that exchange:

- 13: the receiver dies after it asked. Its owner still hands the lease over (the asker's
  heartbeat is live for a lease duration yet), to a dead worker: the lease must expire and be
  taken, and nothing the giver checkpointed may be lost.
- 14: the giver dies after it started handing over (SIGTERM, then SIGKILL while the batch it
  finishes is in the topic but not yet checkpointed): the asker must take the lease after its
  patience (or another worker after its expiry) and send that batch again, inside the kill's
  window.

Each waits for the log line of the moment it names, in the process it kills, and fails if
the protocol never gets there. A handoff between live workers opens no window: a duplicate
that neither the kill's window nor a take from the dead worker explains fails the verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.chaos.harness import ChaosApp, ChaosRun, ChaosWorker
from tests.chaos.scenarios import all_holding, busiest, check, taken_over

HANDOFF_EVENTS = (
    "lease asked for",
    "handing lease over",
    "lease handed over",
    "handoff failed; releasing",
    "lease received",
    "owner did not hand the lease over",
    "lease taken",
    "lease stolen",
    "lease lost",
    "stop requested: handing leases over at batch boundaries",
    "drain timeout: abandoning unfinished batches",
)


def first_logged(worker: ChaosWorker, event: str) -> dict[str, Any] | None:
    """The worker's first log line for ``event`` (the file is parsed only once it names it:
    cheap enough to poll every few milliseconds)."""
    if event.encode() not in worker.log.read_bytes():
        return None
    found = worker.logged(event)
    return found[0] if found else None


def of_process(worker: ChaosWorker, app: ChaosApp) -> list[dict[str, Any]]:
    """The log lines of ``worker``'s process: its file, as long as no other process was
    started under its name (a restart appends to the same file)."""
    assert all(old.log != worker.log for old in app.retired), f"{worker.name} was restarted"
    return worker.log_events()


def timeline(app: ChaosApp) -> str:
    """The handoff protocol's log lines of every worker, in time order."""
    logs = {worker.log: worker for worker in app.all_processes()}
    lines = [
        event
        for worker in logs.values()
        for event in worker.log_events()
        if event.get("event") in HANDOFF_EVENTS
    ]
    lines.sort(key=lambda event: str(event.get("timestamp")))
    skip = {"event", "timestamp", "worker", "app", "level", "shard", "logger"}
    return "\n".join(
        f"  {str(e.get('timestamp'))[11:23]} {e.get('worker')}: {e['event']}"
        f" {str(e.get('shard', ''))[-12:]}"
        + "".join(f" {k}={v}" for k, v in e.items() if k not in skip)
        for e in lines
    )


def finish(run: ChaosRun, app: ChaosApp, notes: list[str]) -> None:
    """``check``, with what the scenario saw and the handoffs of the whole run printed."""
    try:
        check(run)
    finally:
        print(f"{run.scenario}:")
        left = {shard[-12:]: owner for shard, owner in app.owners().items() if owner}
        for note in [*notes, f"leases still owned once every worker stopped: {left}"]:
            print(f"  {note}")
        print(timeline(app))


@pytest.mark.slow
def test_receiver_killed_mid_handoff_loses_nothing(chaos: Callable[..., ChaosRun]) -> None:
    """A third worker joins two that hold every lease: it asks for one (a cooperative
    steal) and is killed right then. The owner hears the request with its next renewal and
    hands the lease to the dead worker; the lease must come back by expiry. Then the worker
    comes back under its name and asks again (a handoff between live workers: no duplicates
    allowed)."""
    run = chaos("SIGKILL receiver mid-handoff (kafka)", rotate_records=400)
    # Each batch waits 0.2 s in the topic before its checkpoint: the giver hands over only
    # after that checkpoint, so nothing it sent may come again.
    app = run.kafka_app(after_delivery=0.2)
    for name in ("w1", "w2"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    run.wait_for_writes(120)

    receiver = app.start_worker("w3")
    run.wait_for(
        lambda: first_logged(receiver, "lease asked for") is not None,
        30,
        "w3 asking for a lease",
        poll=0.002,
    )
    with run.fault("SIGKILL", "w3"):
        receiver.kill()
    mine = of_process(receiver, app)
    asked = [e for e in mine if e.get("event") == "lease asked for"]
    assert asked, f"w3 was killed but never asked for a lease:\n{receiver.log_tail()}"
    shard, giver = asked[0]["shard"], asked[0]["owner"]
    received = any(e.get("event") == "lease received" and e["shard"] == shard for e in mine)

    def handed_to_w3() -> bool:
        return any(
            e["shard"] == shard and e["to"] == "w3"
            for e in app.workers[giver].logged("lease handed over")
        )

    # The handoff goes on without its receiver: the giver hands the lease to the dead w3
    # (whose heartbeat is live for a lease duration yet) ...
    run.wait_for(handed_to_w3, 15, f"{giver} handing {shard} to the dead w3")
    # ... and the lease, unread meanwhile, must come back by its expiry.
    waited = run.wait_for(
        lambda: (shard, "w3") in app.taken_from_owners(), 30, f"{shard} taken from the dead w3"
    )
    taken_over(run, app, "w3")
    notes = [
        f"w3 asked {giver} for {shard}; received before the kill: {received}",
        f"taken from the dead w3 {waited:.1f}s after the handover was seen",
    ]

    app.start_worker("w3")  # back under its name: it asks again, from live owners
    all_holding(run, app)
    run.wait_for_writes(150)
    finish(run, app, notes)


@pytest.mark.slow
def test_giver_killed_right_after_it_started_handing_over(
    chaos: Callable[..., ChaosRun],
) -> None:
    """SIGTERM the busiest of three workers (a deploy): the other two ask for its leases and
    it starts handing them over. It is killed while the last batch of a lease it is handing
    over is in the topic and not yet checkpointed: that lease stays with the dead giver, the
    asker takes it after its patience (or another worker after its expiry) from the last
    checkpoint, and the batch comes again inside the kill's window. Then the worker comes
    back under its name."""
    run = chaos("SIGKILL giver mid-handoff (kafka)", rotate_records=400)
    # A batch spends 0.4 s in the topic before its checkpoint, and with the phase marks the
    # kill waits for a handoff whose last batch is there: the handover cannot be written
    # before that batch's checkpoint, so the kill lands between the two.
    app = run.kafka_app(after_delivery=0.4)
    for name in ("w1", "w2", "w3"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    run.wait_for_writes(120)
    name = busiest(app)
    giver = app.workers[name]
    held = set(app.held_by(name))

    def handing_with_batch_in_topic() -> set[str]:
        if first_logged(giver, "handing lease over") is None:
            return set()
        handing = {e["shard"] for e in giver.logged("handing lease over")}
        handed = {e["shard"] for e in giver.logged("lease handed over")}
        return (handing - handed) & run.phases_of(giver).get("sent", set())

    giver.terminate()
    run.wait_for(
        lambda: bool(handing_with_batch_in_topic()),
        20,
        f"{name} handing a lease over with its last batch not yet checkpointed",
        poll=0.002,
    )
    with run.fault("SIGKILL", name):
        giver.kill()
    mine = of_process(giver, app)
    handing = {e["shard"]: e["to"] for e in mine if e.get("event") == "handing lease over"}
    handed = {e["shard"] for e in mine if e.get("event") == "lease handed over"}
    assert handing, f"{name} was killed but never started a handoff:\n{giver.log_tail()}"
    cut = {shard: to for shard, to in handing.items() if shard not in handed}
    assert cut, f"every handoff {name} started was over before the kill: {handing}"

    # What the dead giver was handing over comes back: forced by its asker after the
    # asker's patience, or taken by another worker after its expiry.
    waited = run.wait_for(
        lambda: all((shard, name) in app.taken_from_owners() for shard in cut),
        30,
        f"{sorted(cut)} taken from the dead {name}",
    )
    taken_over(run, app, name)
    forced = {
        e["shard"] for e in app.log_events("owner did not hand the lease over") if e["shard"] in cut
    }
    notes = [
        f"{name} held {sorted(held)}; started handing over {handing}; finished {handed}",
        f"cut mid-handoff: {cut}; forced by the asker: {sorted(forced)}",
        f"taken from the dead {name} {waited:.1f}s after the kill",
    ]

    app.start_worker(name)  # the deploy's new process
    all_holding(run, app)
    run.wait_for_writes(150)
    finish(run, app, notes)
