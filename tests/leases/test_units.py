"""The lease tables' capacity units, as DynamoDB reports them to the calls bridge makes.

Against ``bridge local``, whose answers carry the units DynamoDB would bill: what the hook
adds up must be what the endpoint counted for the same tables, and other tables stay out.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import aioboto3
import boto3

from bridge.leases.heartbeats import WorkerRegistry
from bridge.leases.store import DynamoLeaseStore
from bridge.leases.units import count_units
from bridge.local import LocalEndpoint


class Tally:
    def __init__(self) -> None:
        self.units: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])

    def __call__(self, table: str, operation: str, read: float, write: float) -> None:
        self.units[(table, operation)][0] += read
        self.units[(table, operation)][1] += write


def endpoint_units(endpoint: LocalEndpoint, tables: set[str]) -> dict[tuple[str, str], list[float]]:
    return {
        (table, operation): [used["read_units"], used["write_units"]]
        for table, operations in endpoint.capacity().items()
        if table in tables
        for operation, used in operations.items()
    }


async def test_the_lease_tables_calls_report_the_units_the_endpoint_billed(
    local_endpoint: LocalEndpoint,
) -> None:
    app = f"units-{uuid.uuid4().hex[:6]}"
    leases, coordination, other = f"{app}-leases", f"{app}-coordination", f"{app}-other"
    tally = Tally()
    async with aioboto3.Session().client(
        "dynamodb", endpoint_url=local_endpoint.endpoint_url, region_name="us-east-1"
    ) as client:
        count_units(client, [leases, coordination], tally)
        store = DynamoLeaseStore(client, leases)
        registry = WorkerRegistry(client, coordination)
        await store.ensure_table()
        await registry.ensure_table()
        for shard in range(20):
            await store.create_lease(f"shard-{shard:03d}", parents=frozenset())
        taken = await store.take((await store.list_leases())[0], "w1")
        await store.checkpoint(taken, "4900000000000000000001")
        await registry.beat("w1")
        await registry.workers()
        await client.create_table(
            TableName=other,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        answer = await client.put_item(TableName=other, Item={"pk": {"S": "a"}})

    assert "ConsumedCapacity" not in answer  # other tables' calls are left as they were
    assert (other, "PutItem") not in tally.units
    assert dict(tally.units) == endpoint_units(local_endpoint, {leases, coordination})
    assert tally.units[(leases, "Scan")][0] > 0
    assert tally.units[(leases, "UpdateItem")][1] >= 2  # the take and the checkpoint
    assert tally.units[(coordination, "Query")][0] == 1.0


def test_a_boto3_client_reports_them_too(local_endpoint: LocalEndpoint) -> None:
    """The leader's lock client is a synchronous boto3 one."""
    table = f"units-{uuid.uuid4().hex[:6]}-lock"
    tally = Tally()
    client: Any = boto3.client(
        "dynamodb", endpoint_url=local_endpoint.endpoint_url, region_name="us-east-1"
    )
    count_units(client, [table], tally)
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName=table, Item={"pk": {"S": "lock"}, "owner": {"S": "x" * 1500}})
    client.get_item(TableName=table, Key={"pk": {"S": "lock"}}, ConsistentRead=True)

    assert dict(tally.units) == {(table, "PutItem"): [0.0, 2.0], (table, "GetItem"): [1.0, 0.0]}
