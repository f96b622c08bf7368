"""``bridge kcl check``: what a takeover of a KCL application's lease table would do.

Reads the lease table named by the configuration (``coordination.lease_table``), the stream
and the coordination table, and writes nothing: every row is judged by
``core.takeover.judge_takeover``. A lease whose checkpoint is a sequence number is checked
against the stream with a GetShardIterator after it: retention may have trimmed the records
that follow, which a takeover would lose.
"""

from __future__ import annotations

from typing import Any

import aioboto3
from botocore.exceptions import ClientError

from bridge.aws import client_kwargs
from bridge.config import BridgeConfig
from bridge.core.lease_keys import StreamKeys
from bridge.core.positions import is_sequence_number
from bridge.core.takeover import TakeoverReport, judge_takeover
from bridge.leases.heartbeats import WorkerRegistry
from bridge.leases.rows import ENTITY_TYPE, is_lease, lease_of
from bridge.leases.store import DynamoLeaseStore
from bridge.streams.client import StreamsClient
from bridge.streams.errors import StreamNotFoundError, TrimmedDataError


async def check_takeover(config: BridgeConfig) -> TakeoverReport:
    async with (
        aioboto3.Session().client("dynamodb", **client_kwargs(config.source)) as dynamodb,
        StreamsClient.for_source(config.source) as streams,
    ):
        rows = await DynamoLeaseStore(dynamodb, config.lease_table).rows()
        leases = [lease_of(row) for row in rows if is_lease(row)]
        arn = config.source.stream_arn or await streams.latest_stream_arn(config.source.name)
        description = await streams.describe_stream(arn)
        shards = {shard.shard_id: shard for shard in description.shards}
        keys = StreamKeys.for_table(arn, [lease.key for lease in leases])
        trimmed: set[str] = set()
        for lease in leases:
            name = keys.name_of(lease.key)
            if name in shards and await _trimmed_after(streams, arn, name, lease.checkpoint):
                trimmed.add(name)
        return judge_takeover(
            shards=shards,
            leases=leases,
            other_rows=[(_key(row), _what(row)) for row in rows if not is_lease(row)],
            trimmed=trimmed,
            live_owners=await _live_owners(dynamodb, config.lock_table),
            initial=config.source.initial_position,
            keys=keys,
        )


async def _trimmed_after(
    streams: StreamsClient, arn: str, shard_id: str, checkpoint: str | None
) -> bool:
    if not is_sequence_number(checkpoint):
        return False
    try:
        await streams.get_shard_iterator(arn, shard_id, "AFTER_SEQUENCE_NUMBER", checkpoint)
    except (TrimmedDataError, StreamNotFoundError):
        return True
    return False


async def _live_owners(dynamodb: Any, table: str) -> set[str]:
    """bridge workers with a heartbeat row; none when the coordination table does not exist
    (no bridge worker ever ran for this application)."""
    try:
        return {row.key for row in await WorkerRegistry(dynamodb, table).workers()}
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return set()
        raise


def _key(row: dict[str, Any]) -> str:
    return str(next(iter(row.get("leaseKey", {"S": "?"}).values())))


def _what(row: dict[str, Any]) -> str:
    kind = row.get(ENTITY_TYPE, {}).get("S")
    return f"entityType {kind}" if kind else "no leaseCounter"
