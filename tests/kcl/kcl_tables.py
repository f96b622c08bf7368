"""Lease tables as KCL 3.x with the DynamoDB Streams Kinesis Adapter 2.x writes them, built
against a real stream of ``bridge local``: what a dead KCL application leaves behind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.core.lease_keys import StreamId

KCL_OWNER = "kcl-host-1"

NOT_LEASES: list[dict[str, Any]] = [
    {"leaseKey": {"S": "Leader"}, "entityType": {"S": "LEADER"}, "leaderId": {"S": KCL_OWNER}},
    {
        "leaseKey": {"S": "Migration3.0"},
        "entityType": {"S": "CLIENT_VERSION_MIGRATION"},
        "cv": {"S": "CLIENT_VERSION_3X"},
    },
    {
        "leaseKey": {"S": KCL_OWNER},
        "entityType": {"S": "WORKER_METRIC_STATS"},
        "leaseCounter": {"N": "9"},
        "lut": {"N": "1767323045"},
    },
]


@dataclass(frozen=True)
class StreamRecord:
    shard: str
    seq: str
    key: str
    version: int


@dataclass(frozen=True)
class StreamShape:
    parents: dict[str, str | None]
    closed: set[str]
    records: dict[str, list[StreamRecord]]
    """Per shard, in order."""

    @property
    def leaves(self) -> list[str]:
        return sorted(s for s in self.parents if s not in self.closed)


def read_stream(streams: Any, arn: str) -> StreamShape:
    """Every shard of the stream and every record still in it, through the public API."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": arn}
    while True:
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        shards += description["Shards"]
        last = description.get("LastEvaluatedShardId")
        if not last:
            break
        kwargs["ExclusiveStartShardId"] = last
    records: dict[str, list[StreamRecord]] = {}
    for shard in shards:
        shard_id = shard["ShardId"]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        out: list[StreamRecord] = []
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                image = record["dynamodb"]["NewImage"]
                out.append(
                    StreamRecord(
                        shard_id,
                        record["dynamodb"]["SequenceNumber"],
                        image["pk"]["S"],
                        int(image["version"]["N"]),
                    )
                )
            iterator = page.get("NextShardIterator")
            if not page["Records"]:
                break
        records[shard_id] = out
    return StreamShape(
        parents={s["ShardId"]: s.get("ParentShardId") for s in shards},
        closed={s["ShardId"] for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]},
        records=records,
    )


def lease_row(
    shard: str, checkpoint: str, parent: str | None, stream: StreamId | None = None
) -> dict[str, Any]:
    """A lease as the adapter leaves it: owner and counter of a KCL worker, its
    checkpointOwner and a stale pending checkpoint, which only KCL reads. With ``stream``,
    as KCL's multi-stream mode keys it, with its ``streamName`` and ``shardId``."""
    row: dict[str, Any] = {
        "leaseKey": {"S": shard if stream is None else stream.key(shard)},
        "leaseOwner": {"S": KCL_OWNER},
        "leaseCounter": {"N": "41"},
        "checkpoint": {"S": checkpoint},
        "checkpointSubSequenceNumber": {"N": "0"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
        "checkpointOwner": {"S": KCL_OWNER},
        "pendingCheckpoint": {"S": checkpoint},
        "pendingCheckpointSubSequenceNumber": {"N": "0"},
    }
    if parent:
        row["parentShardId"] = {"SS": [parent]}
    if stream is not None:
        row["streamName"] = {"S": stream.identifier}
        row["shardId"] = {"S": shard}
    return row


def kcl_checkpoints(shape: StreamShape) -> dict[str, str]:
    """Where KCL stood: closed shards read to their end, each open shard halfway through."""
    checkpoints = dict.fromkeys(shape.closed, "SHARD_END")
    for shard in shape.leaves:
        records = shape.records[shard]
        checkpoints[shard] = records[len(records) // 2].seq if records else "TRIM_HORIZON"
    return checkpoints


def write_kcl_table(
    ddb: Any,
    table: str,
    shape: StreamShape,
    checkpoints: dict[str, str],
    *,
    delete_finished_parents: bool,
    other_rows: bool,
    stream: StreamId | None = None,
) -> None:
    """The lease table: ``delete_finished_parents`` as the adapter does by default (a parent's
    lease goes once its children have checkpoints; the stream keeps listing the parent)."""
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for shard, checkpoint in checkpoints.items():
        if delete_finished_parents and checkpoint == "SHARD_END":
            continue
        row = lease_row(shard, checkpoint, shape.parents[shard], stream)
        ddb.put_item(TableName=table, Item=row)
    for row in NOT_LEASES if other_rows else []:
        ddb.put_item(TableName=table, Item=row)


def processed_by_kcl(shape: StreamShape, checkpoints: dict[str, str]) -> set[str]:
    """Sequence numbers KCL had processed: at or before its checkpoints."""
    done: set[str] = set()
    for shard, records in shape.records.items():
        checkpoint = checkpoints.get(shard)
        for record in records:
            if checkpoint == "SHARD_END" or (
                checkpoint is not None
                and checkpoint.isdigit()
                and int(record.seq) <= int(checkpoint)
            ):
                done.add(record.seq)
    return done


def other_stream_lease(stream: StreamId) -> dict[str, Any]:
    """A lease of another table's stream in the same multi-stream table."""
    other = StreamId(stream.account, stream.region, "another-table", stream.label)
    return lease_row("shardId-00000001700000000000-0000beef", "4000000001", None, other)
