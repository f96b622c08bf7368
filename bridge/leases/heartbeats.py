"""Heartbeat rows: every running worker, with or without leases, so fair shares count it.

Kept in the coordination table (beside the leader's lock), not in the lease table, so the
lease table holds only leases, as KCL expects. A row per worker, under one partition key, so
one Query lists them all. Liveness is judged like lease expiry: on the reader's own clock, by
the counter not moving for a lease duration. Rows of crashed workers expire through the
table's TTL attribute, and a worker that stops cleanly deletes its own.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from bridge.core.leasing import Lease
from bridge.leases.tables import ensure_table

log = structlog.get_logger("bridge.heartbeats")

PARTITION = "lock_key"
SORT = "sort_key"
TTL = "expiry_time"
WORKERS = "workers"
COUNTER = "bridgeHeartbeat"
LEAVING = "bridgeLeaving"


class WorkerRegistry:
    def __init__(self, client: Any, table: str, *, forget_after: float = 3600.0) -> None:
        self.client = client
        self.table = table
        self.forget_after = forget_after

    async def ensure_table(self) -> None:
        """The coordination table, in the schema python-dynamodb-lock expects for its lock."""
        keys = [(PARTITION, "HASH"), (SORT, "RANGE")]
        await ensure_table(self.client, self.table, keys=keys, what="coordination table")

    async def beat(self, worker_id: str, *, leaving: bool = False) -> None:
        """Move our row's counter on. ``leaving``: say on it that we are stopping, so that the
        others stop counting us in their shares and ask for our leases (which we hand over
        while still reading them); a beat without it clears what a previous run under the
        same id may have left there."""
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":ttl": {"N": str(int(time.time() + self.forget_after))},
        }
        if leaving:
            values[":yes"] = {"BOOL": True}
        await self.client.update_item(
            TableName=self.table,
            Key={PARTITION: {"S": WORKERS}, SORT: {"S": worker_id}},
            UpdateExpression="ADD #n :one SET #ttl = :ttl"
            + (", #l = :yes" if leaving else " REMOVE #l"),
            ExpressionAttributeNames={"#n": COUNTER, "#ttl": TTL, "#l": LEAVING},
            ExpressionAttributeValues=values,
        )

    async def leave(self, worker_id: str) -> None:
        await self.client.delete_item(
            TableName=self.table, Key={PARTITION: {"S": WORKERS}, SORT: {"S": worker_id}}
        )

    async def workers(self) -> list[Lease]:
        """Each worker's row as a lease-shaped value, so ``ExpiryTracker`` can judge it; a
        leaving worker's row has ``handoff_to`` set to its own id."""
        rows: list[Lease] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#p = :w",
            "ExpressionAttributeNames": {"#p": PARTITION},
            "ExpressionAttributeValues": {":w": {"S": WORKERS}},
            "ConsistentRead": True,
        }
        while True:
            page = await self.client.query(**kwargs)
            for item in page.get("Items", []):
                worker = item[SORT]["S"]
                counter = int(item.get(COUNTER, {"N": "0"})["N"])
                leaving = worker if item.get(LEAVING, {}).get("BOOL") else None
                rows.append(Lease(worker, owner=worker, counter=counter, handoff_to=leaving))
            start = page.get("LastEvaluatedKey")
            if not start:
                return rows
            kwargs["ExclusiveStartKey"] = start
