"""A processor that cannot handle one record: ``on_error`` decides what happens to its shard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import orjson

from bridge.core.positions import SHARD_END
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import EndReason
from tests.local.stream_reading import describe_all, read_stream
from tests.support.memory import Poison, RecordSink, Seen
from tests.support.workload import Writer, create_table, plan_writes
from tests.worker.conftest import dynamodb, running_worker, worker_config

WRITES = 1_200
KEYS = 60
ROTATE = 200  # so the poisoned shard has children


@dataclass(frozen=True)
class Stream:
    """The stream as read directly, parents before children: the ground truth."""

    records: list[Seen]
    parents: dict[str, str | None]

    def descendants(self, shard: str) -> set[str]:
        found: set[str] = set()
        frontier = {shard}
        while frontier:
            frontier = {child for child, parent in self.parents.items() if parent in frontier}
            found |= frontier
        return found

    def last_in(self, shard: str) -> Seen:
        return [r for r in self.records if r.shard == shard][-1]


def stream_contents(endpoint_url: str, stream_arn: str) -> Stream:
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint_url, region_name="us-east-1")
    parents = {s["ShardId"]: s.get("ParentShardId") for s in describe_all(streams, stream_arn)}
    out = []
    for shard, record in read_stream(streams, stream_arn):
        data: dict[str, Any] = record["dynamodb"]
        out.append(
            Seen(
                shard=shard,
                seq=data["SequenceNumber"],
                event=record["eventName"],
                key=data["Keys"]["pk"]["S"],
                version=int(data["NewImage"]["version"]["N"]),
            )
        )
    return Stream(out, parents)


async def write_all(local: LocalEndpoint) -> tuple[str, Stream, Seen]:
    """Write the workload; returns (table, the stream as written, the poison record)."""
    ddb = dynamodb(local.endpoint_url)
    table, arn = create_table(ddb)
    await asyncio.to_thread(Writer(ddb, table, plan_writes(WRITES, KEYS)).write)
    stream = stream_contents(local.endpoint_url, arn)
    assert len(stream.records) == WRITES
    # Halfway through the first shard, which closed and has children.
    first = stream.records[0].shard
    assert stream.descendants(first)
    in_first = [r for r in stream.records if r.shard == first]
    return table, stream, in_first[len(in_first) // 2]


def by_seq(records: list[Seen]) -> list[Seen]:
    return sorted(records, key=lambda r: int(r.seq))


async def test_on_error_stop_halts_only_that_shard_at_the_record(
    make_local_endpoint: Callable[..., LocalEndpoint],
) -> None:
    local = make_local_endpoint(shards=4, rotate_records=ROTATE)
    table, stream, poison = await write_all(local)
    in_shard = [r for r in stream.records if r.shard == poison.shard]
    before = in_shard[: in_shard.index(poison)]
    blocked = stream.descendants(poison.shard)  # its children wait for it forever
    expected = [
        r
        for r in stream.records
        if (r.shard != poison.shard and r.shard not in blocked) or r in before
    ]

    sink = RecordSink(poison=Poison(poison.key, poison.version))
    config = worker_config(local.endpoint_url, table, sink, processor={"on_error": "stop"})
    async with running_worker(config) as running:
        await sink.wait_until(
            lambda: (
                len(sink.records) >= len(expected) and (poison.shard, EndReason.FAILED) in sink.ends
            ),
            within=60,
        )
        assert not running.task.done()  # the worker and the other shards go on
        await running.stop()
        leases = await running.leases()
        metrics = running.worker.metrics

    assert by_seq(sink.records) == by_seq(expected)
    assert set(sink.failures) == {poison}
    assert leases[poison.shard].checkpoint == (before[-1].seq if before else "TRIM_HORIZON")
    assert all(leases[shard].checkpoint == "TRIM_HORIZON" for shard in blocked)
    assert metrics.value("bridge_errors_fatal_total") == 1
    assert all(lease.owner is None for lease in leases.values())


async def test_on_error_dead_letter_writes_exactly_that_record_and_moves_on(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> None:
    local = make_local_endpoint(shards=4, rotate_records=ROTATE)
    table, stream, poison = await write_all(local)
    dead_letters = tmp_path / "dead-letters.jsonl"

    sink = RecordSink(poison=Poison(poison.key, poison.version))
    config = worker_config(
        local.endpoint_url,
        table,
        sink,
        processor={"on_error": "dead_letter", "dead_letter_path": str(dead_letters)},
    )
    async with running_worker(config) as running:
        await sink.wait_until(lambda: len(sink.records) >= WRITES - 1, within=60)
        await running.stop()
        leases = await running.leases()
        metrics = running.worker.metrics

    assert by_seq(sink.records) == by_seq([r for r in stream.records if r != poison])
    [line] = dead_letters.read_bytes().splitlines()
    letter = orjson.loads(line)
    assert (letter["shard"], letter["seq"], letter["event"]) == (
        poison.shard,
        poison.seq,
        poison.event,
    )
    assert letter["error"] == f"ValueError: cannot handle {poison.key} version {poison.version}"
    assert letter["attempts"] == config.processor.max_attempts
    image = letter["record"]["dynamodb"]["NewImage"]
    assert (image["pk"]["S"], int(image["version"]["N"])) == (poison.key, poison.version)
    # The shard moved past the record: checkpointed after it, or finished and ended.
    checkpoint = leases[poison.shard].checkpoint if poison.shard in leases else SHARD_END
    assert checkpoint in {stream.last_in(poison.shard).seq, SHARD_END}
    assert metrics.value("bridge_dead_letters_total") == 1
    assert (
        metrics.value("bridge_dead_letters_total", destination="file", reason="max_attempts") == 1
    )
