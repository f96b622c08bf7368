"""The lease-store contract: every ownership write is fenced by owner and counter.

Run against DynamoDB over HTTP and against the in-memory store, so the fake users test with
is held to the same rules as the real thing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import aioboto3
import pytest

from bridge.core.leasing import LagReading
from bridge.leases.store import DynamoLeaseStore, LeaseConflictError, LeaseStore
from bridge.local.processes import MotoServer
from bridge.processors.api import LeaseLostError
from bridge.testing.memory_leases import MemoryLeaseStore


@pytest.fixture(params=["dynamodb", "memory"])
async def store(
    request: pytest.FixtureRequest, moto_server: MotoServer
) -> AsyncIterator[LeaseStore]:
    if request.param == "memory":
        yield MemoryLeaseStore()
        return
    session = aioboto3.Session()
    async with session.client(
        "dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ) as client:
        lease_store = DynamoLeaseStore(client, f"app-{uuid.uuid4().hex[:8]}-leases")
        await lease_store.ensure_table()
        yield lease_store


async def test_create_is_idempotent_and_records_parents(store: LeaseStore) -> None:
    assert await store.create_lease("shard-1", frozenset())
    assert await store.create_lease("shard-2", frozenset(["shard-1"]))
    assert not await store.create_lease("shard-2", frozenset())
    await store.add_children("shard-1", frozenset(["shard-2"]))
    leases = {lease.key: lease for lease in await store.list_leases()}
    assert leases["shard-2"].parents == frozenset(["shard-1"])
    assert leases["shard-1"].children == frozenset(["shard-2"])
    assert leases["shard-1"].owner is None
    assert leases["shard-1"].counter == 0


async def test_take_renew_checkpoint_release(store: LeaseStore) -> None:
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    mine = await store.take(free, "w1")
    assert (mine.owner, mine.counter) == ("w1", 1)
    mine = await store.renew(mine)
    mine = await store.checkpoint(mine, "100")
    (seen,) = await store.list_leases()
    assert (seen.owner, seen.counter, seen.checkpoint) == ("w1", 2, "100")
    await store.release(mine)
    (released,) = await store.list_leases()
    assert released.owner is None
    assert released.counter == 3
    assert released.checkpoint == "100"


async def test_stale_counter_is_fenced(store: LeaseStore) -> None:
    """The SIGSTOP case: a worker wakes up holding an old counter; its writes are refused."""
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    stale = await store.take(free, "w1")
    (current,) = await store.list_leases()
    await store.take(current, "w2")  # w2 takes the (expired) lease
    with pytest.raises(LeaseLostError):
        await store.checkpoint(stale, "200")
    with pytest.raises(LeaseLostError):
        await store.renew(stale)
    with pytest.raises(LeaseLostError):
        await store.release(stale)
    (final,) = await store.list_leases()
    assert final.owner == "w2"
    assert final.checkpoint == "TRIM_HORIZON"  # as created: the stale checkpoint never landed


async def test_renewals_and_checkpoints_carry_the_owners_lag_reading(store: LeaseStore) -> None:
    """The lag rides along in writes the lease needs anyway, for ``bridge status`` to read."""
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    assert free.lag is None
    mine = await store.take(free, "w1")
    mine = await store.renew(replace(mine, lag=LagReading(lag_ms=1200, measured_at_ms=1_000)))
    (seen,) = await store.list_leases()
    assert seen.lag == LagReading(lag_ms=1200, measured_at_ms=1_000)
    assert seen.counter == mine.counter

    mine = await store.checkpoint(replace(mine, lag=LagReading(0, 2_000)), "100")
    (seen,) = await store.list_leases()
    assert (seen.checkpoint, seen.lag) == ("100", LagReading(0, 2_000))

    mine = await store.renew(replace(mine, lag=None))  # no reading: the last one stays
    (seen,) = await store.list_leases()
    assert seen.lag == LagReading(0, 2_000)


async def test_a_fenced_off_owner_writes_no_lag(store: LeaseStore) -> None:
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    stale = await store.take(free, "w1")
    (current,) = await store.list_leases()
    await store.take(current, "w2")
    late = replace(stale, lag=LagReading(lag_ms=99, measured_at_ms=5_000))
    with pytest.raises(LeaseLostError):
        await store.renew(late)
    with pytest.raises(LeaseLostError):
        await store.checkpoint(late, "200")
    (final,) = await store.list_leases()
    assert (final.owner, final.lag, final.checkpoint) == ("w2", None, "TRIM_HORIZON")


async def test_two_takes_of_one_lease_only_one_wins(store: LeaseStore) -> None:
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    await store.take(free, "w1")
    with pytest.raises(LeaseConflictError):
        await store.take(free, "w2")


async def test_only_finished_leases_can_be_deleted(store: LeaseStore) -> None:
    await store.create_lease("open", frozenset())
    await store.create_lease("done", frozenset())
    leases = {lease.key: lease for lease in await store.list_leases()}
    done = await store.take(leases["done"], "w1")
    await store.checkpoint(done, "SHARD_END")
    await store.delete("open")
    await store.delete("done")
    assert [lease.key for lease in await store.list_leases()] == ["open"]


async def test_listing_pages_through_many_leases(store: LeaseStore) -> None:
    for i in range(120):
        await store.create_lease(f"shard-{i:04d}", frozenset())
    assert len(await store.list_leases()) == 120


async def test_memory_store_fails_the_named_call_it_was_told_to() -> None:
    store = MemoryLeaseStore()
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    mine = await store.take(free, "w1")
    store.fail("renew", on_call=2, error=TimeoutError("slow network"))
    mine = await store.renew(mine)
    with pytest.raises(TimeoutError, match="slow network"):
        await store.renew(mine)
    assert (await store.renew(mine)).counter == mine.counter + 1


async def test_a_handoff_asked_for_moves_no_counter_and_is_heard_by_the_next_renewal(
    store: LeaseStore,
) -> None:
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    mine = await store.take(free, "owner")
    (seen,) = await store.list_leases()
    await store.request_handoff(seen, "asker")
    (asked,) = await store.get_leases(["s"])
    assert (asked.owner, asked.counter, asked.handoff_to) == ("owner", mine.counter, "asker")
    # The owner's writes go on (the counter it holds is still right) and tell it who asked.
    mine = await store.checkpoint(mine, "100")
    mine = await store.renew(mine)
    assert mine.handoff_to == "asker"
    # The last to ask is the one asked for: a request left by a worker that died is replaced.
    await store.request_handoff(seen, "second")
    assert (await store.renew(mine)).handoff_to == "second"


async def test_asking_for_a_lease_whose_owner_changed_is_refused(store: LeaseStore) -> None:
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    await store.take(free, "owner")
    (seen,) = await store.list_leases()
    with pytest.raises(LeaseConflictError):
        await store.request_handoff(replace(seen, owner="someone-else"), "asker")
    with pytest.raises(LeaseConflictError):
        await store.request_handoff(free, "asker")  # free: there is no owner to ask


async def test_hand_over_gives_the_lease_checkpointed_and_fences_the_giver(
    store: LeaseStore,
) -> None:
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    mine = await store.take(free, "giver")
    await store.request_handoff(mine, "asker")
    mine = await store.checkpoint(mine, "200")
    given = await store.hand_over(mine, "asker")
    (row,) = await store.get_leases(["s", "no-such-lease"])
    assert (row.owner, row.counter, row.checkpoint, row.handoff_to) == (
        "asker",
        mine.counter + 1,
        "200",
        None,
    )
    assert given.counter == row.counter
    # The giver holds an old counter now: every write of its own is refused.
    for write in (store.renew(mine), store.checkpoint(mine, "300")):
        with pytest.raises(LeaseLostError):
            await write
    with pytest.raises(LeaseConflictError):
        await store.hand_over(mine, "asker")
    # A forced take clears a request nobody answered.
    await store.request_handoff(row, "late")
    taken = await store.take(row, "thief")
    assert taken.handoff_to is None and (await store.get_leases(["s"]))[0].handoff_to is None


async def test_a_hand_over_goes_only_to_the_worker_still_asking(store: LeaseStore) -> None:
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    mine = await store.take(free, "giver")
    await store.request_handoff(mine, "first")
    await store.request_handoff(mine, "second")  # replaces the first request
    with pytest.raises(LeaseConflictError):
        await store.hand_over(mine, "first")
    await store.withdraw_request("s", "first")  # not first's any more: left alone
    (row,) = await store.get_leases(["s"])
    assert (row.owner, row.counter, row.handoff_to) == ("giver", mine.counter, "second")
    await store.withdraw_request("s", "second")
    with pytest.raises(LeaseConflictError):
        await store.hand_over(mine, "second")  # withdrawn: the lease stays with its owner
    (row,) = await store.get_leases(["s"])
    assert (row.owner, row.counter, row.handoff_to) == ("giver", mine.counter, None)
