"""A throttled lease table costs no lease: renewals are retried at once, checkpoints are retried
without holding the lease's lock while they wait (so a renewal goes first), and only the lease
deadline, never a passing failure, ends a tenure. Pure: an in-memory lease table."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from botocore.exceptions import ClientError

from bridge.core.leasing import Lease
from bridge.processors.api import LeaseLostError
from bridge.testing.memory_leases import MemoryLeaseStore
from bridge.worker.lease_holder import LeaseHolder
from bridge.worker.lease_table_retry import is_transient

LEASE = 2.0


def aws_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "UpdateItem",
    )


def throttled() -> ClientError:
    return aws_error("ProvisionedThroughputExceededException")


async def held(store: MemoryLeaseStore, key: str = "shard-1") -> LeaseHolder:
    await store.create_lease(key, frozenset())
    lease = await store.take(Lease(key), "me")
    return LeaseHolder(store, lease, LEASE, taken_at=time.monotonic(), rng=random.Random(7))


def test_passing_failures_are_told_from_lasting_ones() -> None:
    assert is_transient(throttled())
    assert is_transient(aws_error("ThrottlingException"))
    assert is_transient(aws_error("InternalServerError", 500))
    assert is_transient(ConnectionResetError())
    assert not is_transient(aws_error("ValidationException"))
    assert not is_transient(aws_error("AccessDeniedException"))


async def test_a_throttled_renewal_is_tried_again_at_once_until_it_lands() -> None:
    store = MemoryLeaseStore()
    holder = await held(store)
    for call in (1, 2, 3):
        store.fail("renew", on_call=call, error=throttled())
    started = time.monotonic()
    assert await holder.renew(give_up_at=started + LEASE / 3)
    assert holder.retries == 3
    assert store.rows["shard-1"].counter == holder.lease.counter == 2
    assert time.monotonic() - started < LEASE / 3  # within the round, not a round later


async def test_a_renewal_that_keeps_failing_leaves_the_rest_to_the_next_round() -> None:
    store = MemoryLeaseStore()
    holder = await held(store)
    for call in range(1, 100):
        store.fail("renew", on_call=call, error=throttled())
    started = time.monotonic()
    assert await holder.renew(give_up_at=started + 0.3)  # still ours: the deadline is later
    assert time.monotonic() - started < 0.5
    assert holder.retries >= 2


async def test_a_throttled_checkpoint_waits_without_the_lock_so_a_renewal_goes_first() -> None:
    store = MemoryLeaseStore()
    holder = await held(store)
    for call in (1, 2, 3, 4):
        store.fail("checkpoint", on_call=call, error=throttled())
    checkpoint = asyncio.create_task(holder.checkpoint("100"))
    await asyncio.sleep(0)  # the checkpoint's first try fails; it waits to try again
    assert store.calls["checkpoint"] == 1
    assert await asyncio.wait_for(holder.renew(), 0.5)  # not queued behind the checkpoint
    assert not checkpoint.done()
    await asyncio.wait_for(checkpoint, LEASE)
    # the checkpoint was written with the counter the renewal moved on, not refused
    assert store.rows["shard-1"].checkpoint == "100"
    assert store.rows["shard-1"].counter == 2
    assert holder.checkpoint_writes == 1


async def test_a_lasting_checkpoint_error_is_raised_at_once() -> None:
    store = MemoryLeaseStore()
    holder = await held(store)
    store.fail("checkpoint", on_call=1, error=aws_error("ValidationException"))
    with pytest.raises(ClientError):
        await asyncio.wait_for(holder.checkpoint("100"), 0.5)
    assert holder.retries == 0
    assert holder.is_valid()


async def test_a_checkpoint_that_never_lands_ends_at_the_lease_deadline() -> None:
    store = MemoryLeaseStore()
    holder = await held(store)
    for call in range(1, 1000):
        store.fail("checkpoint", on_call=call, error=throttled())
    started = time.monotonic()
    with pytest.raises(LeaseLostError):
        await holder.checkpoint("100")
    assert LEASE - 0.1 <= time.monotonic() - started <= LEASE + 0.5
    assert holder.lost.is_set()
    assert store.rows["shard-1"].checkpoint == "TRIM_HORIZON"  # as created: nothing landed
