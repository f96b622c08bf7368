"""What ``bridge status`` shows: every lease with its owner, checkpoint, phase and lag, the
leader, and the workers. Read straight from the lease and coordination tables, so it works with
no worker running and from any machine that can read them.

The lag of a shard is the owner's own reading, written to its lease row with each renewal and
checkpoint. A reading older than a few renewal intervals is marked stale: its owner stopped
renewing (dead, frozen, cut off), or stopped reading (a stuck processor), so the number no
longer says how far behind the shard is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aioboto3
from botocore.exceptions import BotoCoreError, ClientError

from bridge.aws import client_kwargs
from bridge.config import BridgeConfig
from bridge.core.lease_keys import split_key, stream_of_identifier
from bridge.core.leasing import Lease
from bridge.core.lineage import ShardPhase, phase_of
from bridge.leases.heartbeats import WorkerRegistry
from bridge.leases.leader import LOCK_KEY
from bridge.leases.store import DynamoLeaseStore

STALE_AFTER_RENEWALS = 3
"""A lag reading older than this many renewal intervals is stale."""


@dataclass(frozen=True)
class LeaseRow:
    table: str | None
    """The table, for an application reading several (``source.tables``); else None."""
    shard: str
    owner: str | None
    counter: int
    checkpoint: str | None
    parents: list[str]
    state: str
    lag_ms: int | None
    """The owner's last reading; None when there is none or the shard is finished."""
    lag_measured_at: str | None
    """When the owner took that reading (ISO 8601, UTC, by the owner's clock)."""
    lag_age_ms: int | None
    """How old the reading was when this status was read (off by the clock skew)."""
    lag_stale: bool
    """The reading is older than ``STALE_AFTER_RENEWALS`` renewal intervals: do not trust it."""


@dataclass(frozen=True)
class Summary:
    leases: int
    owned: int
    """Unfinished leases with an owner."""
    free: int
    """Unfinished leases without an owner: nobody reads them now."""
    finished: int
    """Read to SHARD_END; they no longer count as load."""
    workers: int
    """Workers holding leases."""
    registered_workers: int
    """Heartbeat rows (idle standbys too; a crashed worker's row stays until its TTL)."""
    leader: str | None
    max_lag_ms: int | None
    """The highest fresh lag reading of an unfinished shard."""
    stale_lags: int
    """Unfinished shards whose lag reading is stale."""


@dataclass(frozen=True)
class ClusterStatus:
    app: str
    lease_table: str
    read_at: str
    leader: str | None
    workers: list[str]
    """Workers holding leases."""
    registered_workers: list[str]
    summary: Summary
    leases: list[LeaseRow]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LeaseTableMissingError(Exception):
    """The app has no lease table yet: no worker of it ever started against this account."""


async def read_status(config: BridgeConfig) -> ClusterStatus:
    async with aioboto3.Session().client("dynamodb", **client_kwargs(config.source)) as dynamodb:
        return await _read(dynamodb, config)


async def watch_status(
    config: BridgeConfig,
    interval: float,
    show: Callable[[ClusterStatus], None],
    on_error: Callable[[Exception], None],
) -> None:
    """Read and ``show`` the status every ``interval`` seconds until cancelled, over one client.

    The first read must succeed (it raises); later failures go to ``on_error`` and the next
    read tries again, so a watch survives a throttled or briefly unreachable table.
    """
    async with aioboto3.Session().client("dynamodb", **client_kwargs(config.source)) as dynamodb:
        show(await _read(dynamodb, config))
        while True:
            await asyncio.sleep(interval)
            try:
                status = await _read(dynamodb, config)
            except (BotoCoreError, ClientError, OSError, LeaseTableMissingError) as exc:
                on_error(exc)
                continue
            show(status)


async def _read(dynamodb: Any, config: BridgeConfig) -> ClusterStatus:
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
    registered = await _registered_workers(dynamodb, config.lock_table)
    renew_interval = config.coordination.effective_renew_interval.total_seconds()
    return build_status(
        app=config.app,
        lease_table=config.lease_table,
        leases=leases,
        leader=leader,
        registered_workers=registered,
        now_ms=round(time.time() * 1000),
        stale_after_ms=round(STALE_AFTER_RENEWALS * renew_interval * 1000),
    )


def build_status(
    *,
    app: str,
    lease_table: str,
    leases: list[Lease],
    leader: str | None,
    registered_workers: list[str],
    now_ms: int,
    stale_after_ms: int,
) -> ClusterStatus:
    """The status as of ``now_ms`` (wall clock, epoch ms), from what the tables hold."""
    rows = _rows(leases, now_ms, stale_after_ms)
    owners = sorted({row.owner for row in rows if row.owner})
    return ClusterStatus(
        app=app,
        lease_table=lease_table,
        read_at=_iso(now_ms),
        leader=leader,
        workers=owners,
        registered_workers=sorted(registered_workers),
        summary=_summary(rows, owners, registered_workers, leader),
        leases=rows,
    )


def _rows(leases: list[Lease], now_ms: int, stale_after_ms: int) -> list[LeaseRow]:
    # Parent links hold shard ids: a lease's parents are looked up within its own stream.
    checkpoints = {
        (split_key(lease.key).stream, split_key(lease.key).name): lease.checkpoint
        for lease in leases
    }
    rows: list[LeaseRow] = []
    for lease in sorted(leases, key=lambda lease: lease.key):
        lag = None if lease.finished else lease.lag
        age = None if lag is None else max(0, now_ms - lag.measured_at_ms)
        parts = split_key(lease.key)
        stream = stream_of_identifier(parts.stream) if parts.stream else None
        mine = {name: cp for (s, name), cp in checkpoints.items() if s == parts.stream}
        rows.append(
            LeaseRow(
                table=None if stream is None else stream.table,
                shard=parts.name,
                owner=lease.owner,
                counter=lease.counter,
                checkpoint=lease.checkpoint,
                parents=sorted(lease.parents),
                state=str(phase_of(parts.name, lease.parents, mine)),
                lag_ms=None if lag is None else lag.lag_ms,
                lag_measured_at=None if lag is None else _iso(lag.measured_at_ms),
                lag_age_ms=age,
                lag_stale=age is not None and age > stale_after_ms,
            )
        )
    return rows


def _summary(
    rows: list[LeaseRow], owners: list[str], registered: list[str], leader: str | None
) -> Summary:
    unfinished = [row for row in rows if row.state != ShardPhase.HISTORICAL]
    fresh = [row.lag_ms for row in unfinished if row.lag_ms is not None and not row.lag_stale]
    return Summary(
        leases=len(rows),
        owned=sum(1 for row in unfinished if row.owner),
        free=sum(1 for row in unfinished if not row.owner),
        finished=len(rows) - len(unfinished),
        workers=len(owners),
        registered_workers=len(registered),
        leader=leader,
        max_lag_ms=max(fresh, default=None),
        stale_lags=sum(1 for row in unfinished if row.lag_stale),
    )


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


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


async def _registered_workers(dynamodb: Any, table: str) -> list[str]:
    """Every worker's heartbeat row; none when the table is missing or not readable to us."""
    try:
        rows = await WorkerRegistry(dynamodb, table).workers()
    except ClientError:
        return []
    return [row.key for row in rows]
