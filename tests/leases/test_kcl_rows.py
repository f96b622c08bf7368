"""A KCL application's lease table as bridge finds it: rows that are not leases are passed
over and left as they are; a lease bridge takes loses the attributes only KCL reads; leases
bridge creates carry a checkpoint, as KCL's do. Against DynamoDB over HTTP (moto)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest

from bridge.leases.store import DynamoLeaseStore
from bridge.local.processes import MotoServer

# Rows KCL 3 keeps beside its leases, as it writes them (attributes abridged).
NOT_LEASES: list[dict[str, Any]] = [
    {"leaseKey": {"S": "leader"}, "entityType": {"S": "LEADER"}, "leaderId": {"S": "host-1"}},
    {
        "leaseKey": {"S": "Migration3.0"},
        "entityType": {"S": "CLIENT_VERSION_MIGRATION"},
        "cv": {"S": "CLIENT_VERSION_3x"},
    },
    {
        "leaseKey": {"S": "worker-7"},
        "entityType": {"S": "WORKER_METRIC_STATS"},
        "leaseCounter": {"N": "3"},
    },
    {"leaseKey": {"S": "half-written"}},  # no counter: not a lease either
]

KCL_LEASE = {
    "leaseKey": {"S": "shardId-00000001700000000000-aaaa0001"},
    "leaseOwner": {"S": "kcl-host-1"},
    "leaseCounter": {"N": "41"},
    "checkpoint": {"S": "49600000000000000000000000000000000000000000000000000012"},
    "checkpointSubSequenceNumber": {"N": "0"},
    "checkpointOwner": {"S": "kcl-host-1"},
    "pendingCheckpoint": {"S": "49600000000000000000000000000000000000000000000000000020"},
    "pendingCheckpointSubSequenceNumber": {"N": "0"},
    "pendingCheckpointState": {"B": b"\x00\x01"},
    "ownerSwitchesSinceCheckpoint": {"N": "0"},
    "parentShardId": {"SS": ["shardId-00000001600000000000-aaaa0000"]},
}


@pytest.fixture
async def kcl_table(moto_server: MotoServer) -> AsyncIterator[tuple[Any, DynamoLeaseStore]]:
    async with aioboto3.Session().client(
        "dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ) as client:
        store = DynamoLeaseStore(client, f"kcl-{uuid.uuid4().hex[:8]}")
        await store.ensure_table()
        for item in [*NOT_LEASES, KCL_LEASE]:
            await client.put_item(TableName=store.table, Item=item)
        yield client, store


async def test_rows_that_are_not_leases_are_passed_over_and_left_alone(
    kcl_table: tuple[Any, DynamoLeaseStore],
) -> None:
    client, store = kcl_table
    (lease,) = await store.list_leases()
    assert lease.key == KCL_LEASE["leaseKey"]["S"] and lease.counter == 41
    rows = await client.scan(TableName=store.table, ConsistentRead=True)
    assert len(rows["Items"]) == len(NOT_LEASES) + 1


async def test_a_taken_lease_loses_what_only_kcl_reads_and_keeps_its_checkpoint(
    kcl_table: tuple[Any, DynamoLeaseStore],
) -> None:
    client, store = kcl_table
    (lease,) = await store.list_leases()
    taken = await store.take(lease, "bridge-1")
    assert taken.checkpoint == KCL_LEASE["checkpoint"]["S"] and taken.owner == "bridge-1"
    row = (await client.get_item(TableName=store.table, Key={"leaseKey": KCL_LEASE["leaseKey"]}))[
        "Item"
    ]
    kcl_only = {"checkpointOwner", "pendingCheckpoint", "pendingCheckpointSubSequenceNumber"}
    assert not kcl_only & set(row) and "pendingCheckpointState" not in row
    assert row["checkpointSubSequenceNumber"] == {"N": "0"}
    assert row["parentShardId"] == KCL_LEASE["parentShardId"]


async def test_leases_bridge_creates_carry_a_checkpoint_as_kcls_do(
    kcl_table: tuple[Any, DynamoLeaseStore],
) -> None:
    client, store = kcl_table
    await store.create_lease("shardId-new", frozenset(), "LATEST")
    await store.create_lease("shardId-child", frozenset(["shardId-new"]))
    row = {
        key: (await client.get_item(TableName=store.table, Key={"leaseKey": {"S": key}}))["Item"]
        for key in ("shardId-new", "shardId-child")
    }
    assert row["shardId-new"]["checkpoint"] == {"S": "LATEST"}
    assert row["shardId-child"]["checkpoint"] == {"S": "TRIM_HORIZON"}
    assert row["shardId-child"]["checkpointSubSequenceNumber"] == {"N": "0"}
