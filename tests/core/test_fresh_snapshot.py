"""A fresh snapshot taken while shards are read (``on_trimmed: rebootstrap``): when the
leader takes one, which shards wait for it, and when its scan may start. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.leasing import Lease
from bridge.core.positions import SHARD_END, TrimAction, after_trim
from bridge.core.snapshot_plan import (
    SnapshotRequest,
    pending_segments,
    segment_of,
    segments,
    snapshot_wanted,
    still_read,
)
from bridge.core.sync_plan import plan_sync
from tests.core.test_sync_plan import lease_tables, streams

ON_TRIM = SnapshotRequest(segments=2, margin_ms=60_000, new_app=False, on_trim=True)
NOW = 10_000_000


def asked(leases: dict[str, Lease], key: str, at_ms: int) -> dict[str, Lease]:
    return {**leases, key: Lease(key, owner="w1", checkpoint="7", snapshot_wanted_ms=at_ms)}


@given(data=st.data())
def test_a_request_gets_one_snapshot_that_every_unfinished_shard_waits_for(
    data: st.DataObject,
) -> None:
    shards = data.draw(streams())
    leases = asked(data.draw(lease_tables(shards)), "s00", NOW - 5_000)
    plan = plan_sync(shards, leases, "trim_horizon", snapshot=ON_TRIM, now_ms=NOW)
    fresh = frozenset(s.key for s in segments(NOW - 60_000, 2))
    assert {key for key, _ in plan.create if segment_of(key)} == fresh
    waiting = {key for key, parents in plan.add_parents if parents == fresh}
    unfinished = {key for key, lease in leases.items() if not lease.finished}
    assert waiting == unfinished and "s00" in waiting
    assert all(parents >= fresh for key, parents in plan.create if segment_of(key) is None)

    # The next sync: the segments exist and hold the request, so no second snapshot; a shard
    # leased since, or one the add missed (a leader that stopped), is made to wait too.
    after = (
        {key: Lease(key) for key in fresh}
        | {
            key: lease
            if key == "late"
            else Lease(key, lease.owner, 1, lease.checkpoint, lease.parents | fresh)
            for key, lease in leases.items()
            if not lease.finished
        }
        | {"late": Lease("late", checkpoint="9")}
    )
    again = plan_sync(shards, after, "trim_horizon", snapshot=ON_TRIM, now_ms=NOW + 1_000)
    assert not any(segment_of(key) for key, _ in again.create)
    assert dict(again.add_parents) == {"late": fresh}


def test_a_request_older_than_a_snapshot_since_asks_for_nothing() -> None:
    done = {s.key: Lease(s.key, checkpoint=SHARD_END) for s in segments(NOW, 2)}
    shard = Lease("s1", owner="w1", checkpoint="7", parents=frozenset(done))
    covered = {**done, "s1": shard, **asked({}, "s2", NOW + 30_000)}
    assert not snapshot_wanted(covered.values(), margin_ms=60_000)
    assert snapshot_wanted(asked(covered, "s2", NOW + 61_000).values(), margin_ms=60_000)
    assert pending_segments(covered.values()) == frozenset()


def test_the_scan_waits_for_every_live_reader_to_say_it_paused() -> None:
    fresh = frozenset(s.key for s in segments(NOW, 2))
    leases = [
        *(Lease(key) for key in fresh),
        Lease("read", owner="w1", checkpoint="7", parents=fresh),
        Lease("free", checkpoint="7", parents=fresh),
        Lease("dead-owner", owner="w9", checkpoint="7", parents=fresh),
        Lease("done", owner="w1", checkpoint=SHARD_END),
        Lease("paused-before", owner="w2", checkpoint="7", paused_for_ms=NOW - 1),
    ]
    assert still_read(leases, NOW, {"w1", "w2"}) == "read"
    leases[2] = Lease("read", owner="w1", checkpoint="7", parents=fresh, paused_for_ms=NOW)
    assert still_read(leases, NOW, {"w1", "w2"}) == "paused-before"  # paused for an older one
    assert still_read(leases[:-1], NOW, {"w1", "w2"}) is None


def test_a_trim_asks_for_a_snapshot_and_reads_on_unless_one_covers_it() -> None:
    wanted = after_trim("100", "rebootstrap")
    assert wanted.action is TrimAction.REBOOTSTRAP and wanted.lost_after == "100"
    assert wanted.retry_from is not None and wanted.retry_from.kind == "TRIM_HORIZON"
    for mode in ("fail", "resume", "rebootstrap"):
        covered = after_trim("100", mode, covered=True)  # type: ignore[arg-type]
        assert covered.action is TrimAction.RESUME and covered.lost_after is None
