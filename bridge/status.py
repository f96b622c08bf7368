"""What ``bridge status`` shows: every lease with its owner, checkpoint and phase, the leader,
and the workers. Read straight from the lease and lock tables, so it works with no worker
running and from any machine that can read them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import aioboto3
from botocore.exceptions import ClientError

from bridge.aws import client_kwargs
from bridge.config import BridgeConfig
from bridge.core.leasing import Lease
from bridge.core.lineage import phase_of
from bridge.leases.leader import LOCK_KEY
from bridge.leases.store import DynamoLeaseStore


@dataclass(frozen=True)
class LeaseRow:
    shard: str
    owner: str | None
    counter: int
    checkpoint: str | None
    parents: list[str]
    state: str


@dataclass(frozen=True)
class ClusterStatus:
    app: str
    lease_table: str
    leader: str | None
    workers: list[str]
    leases: list[LeaseRow]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LeaseTableMissingError(Exception):
    """The app has no lease table yet: no worker of it ever started against this account."""


async def read_status(config: BridgeConfig) -> ClusterStatus:
    kwargs = client_kwargs(config.source)
    async with aioboto3.Session().client("dynamodb", **kwargs) as dynamodb:
        store = DynamoLeaseStore(dynamodb, config.lease_table)
        try:
            leases = await store.list_leases()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise LeaseTableMissingError(
                    f"lease table {config.lease_table} does not exist: has a worker of app "
                    f"{config.app!r} run against this account and region?"
                ) from None
            raise
        leader = await _leader(dynamodb, config.lock_table)
    rows = _rows(leases)
    owners = sorted({row.owner for row in rows if row.owner})
    return ClusterStatus(config.app, config.lease_table, leader, owners, rows)


def _rows(leases: list[Lease]) -> list[LeaseRow]:
    checkpoints = {lease.key: lease.checkpoint for lease in leases}
    return [
        LeaseRow(
            shard=lease.key,
            owner=lease.owner,
            counter=lease.counter,
            checkpoint=lease.checkpoint,
            parents=sorted(lease.parents),
            state=str(phase_of(lease.key, lease.parents, checkpoints)),
        )
        for lease in sorted(leases, key=lambda lease: lease.key)
    ]


async def _leader(dynamodb: Any, table: str) -> str | None:
    try:
        answer = await dynamodb.get_item(
            TableName=table,
            Key={"lock_key": {"S": LOCK_KEY}, "sort_key": {"S": "-"}},
            ConsistentRead=True,
        )
    except ClientError:
        return None
    owner = answer.get("Item", {}).get("owner_name", {}).get("S")
    return str(owner) if owner else None
