"""Volume: the shard tree accounts for every record once, and memory stays bounded.

moto's HTTP path takes about 250 writes/s here, so these tests write through moto's backend
in this process (the same capture hook HTTP writes go through) and read back over HTTP with
boto3, or drive the emulator core directly for the memory measurement.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bridge.local.emulator import (
    CapturedChange,
    StreamIdentity,
    StreamsEmulator,
    StreamSettings,
    parse_sequence,
)
from bridge.local.server import LocalServer
from bridge.local.settings import LocalSettings
from tests.local.stream_reading import create_table, describe_all, parent_first, read_shard

KEYS = 5000


@pytest.fixture
def in_process_server() -> Iterator[LocalServer]:
    """rotation is set per test through the emulator settings, so start it lazily."""
    servers: list[LocalServer] = []

    def start(rotate_records: int) -> LocalServer:
        settings = LocalSettings(streams=StreamSettings(rotate_records=rotate_records))
        server = LocalServer(settings).start()
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        server.stop()


def write_through_moto(table: str, count: int) -> dict[str, list[int]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    written: dict[str, list[int]] = {}
    for n in range(count):
        key = f"item-{n % KEYS:05d}"
        backend.put_item(table, {"pk": {"S": key}, "n": {"N": str(n)}})
        written.setdefault(key, []).append(n)
    return written


@pytest.mark.parametrize(
    ("writes", "rotate_every"),
    [
        pytest.param(10_000, 100, id="10k"),
        pytest.param(100_000, 1000, id="100k", marks=pytest.mark.slow),
    ],
)
def test_reading_the_shard_tree_parent_first_yields_every_record_once(
    in_process_server: Any, writes: int, rotate_every: int
) -> None:
    server: LocalServer = in_process_server(rotate_every)
    url = server.endpoint_url
    ddb = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", endpoint_url=url, region_name="us-east-1")
    table, arn = create_table(ddb, "scale")
    written = write_through_moto(table, writes)

    shards = describe_all(streams, arn)
    closed = [s for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert len(closed) >= writes // rotate_every - 8  # only the open leaves are partly full
    by_id = {s["ShardId"]: s for s in shards}
    seen: dict[str, list[int]] = {}
    sequences: list[int] = []
    for shard in parent_first(shards):
        parent = by_id.get(shard.get("ParentShardId", ""))
        records = read_shard(streams, arn, shard)
        if parent is not None and records:
            assert parse_sequence(records[0]["dynamodb"]["SequenceNumber"]) > parse_sequence(
                parent["SequenceNumberRange"]["EndingSequenceNumber"]
            )
        for record in records:
            image = record["dynamodb"]["NewImage"]
            seen.setdefault(image["pk"]["S"], []).append(int(image["n"]["N"]))
            sequences.append(parse_sequence(record["dynamodb"]["SequenceNumber"]))
    assert len(sequences) == writes
    assert len(set(sequences)) == writes
    assert seen == written  # every write once, each key's writes in the order made


# A record here carries both images of a 3-attribute item: about 480 bytes of JSON. The
# emulator keeps each as one bytes object plus 16 bytes of sequence and time, so 100,000
# records measure about 54 MB; iterators are signed tokens and add nothing.
RECORDS = 100_000
ITERATORS = 10_000
MEMORY_BOUND = 64 * 1024 * 1024
PER_RECORD_OVERHEAD = 80  # bytes beyond the record's own JSON
ITERATOR_BOUND = 256 * 1024


def test_memory_stays_bounded_after_100k_writes_and_10k_abandoned_iterators() -> None:
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mem/stream/2024-01-01T00:00:00.000"
    now = 1_700_000_000.0
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        emulator = StreamsEmulator(StreamSettings(rotate_records=1000), seed=5)
        emulator.create_stream(
            StreamIdentity(arn, "mem", "L", "NEW_AND_OLD_IMAGES", (("pk", "HASH"),), "us-east-1"),
            now,
        )
        for n in range(RECORDS):
            key = b'{"S":"item-%05d"}' % (n % KEYS)
            new = b'{"pk":%s,"n":{"N":"%d"},"status":{"S":"shipped"}}' % (key, n)
            old = None if n < KEYS else new.replace(b'"%d"' % n, b'"%d"' % (n - KEYS))
            change = CapturedChange(
                "MODIFY" if old else "INSERT", key, b'{"pk":%s}' % key, new, old
            )
            emulator.record_change(arn, change, now)
        gc.collect()
        after_writes = tracemalloc.get_traced_memory()[0] - base

        shard_ids = [
            s["ShardId"]
            for s in emulator.describe_stream({"StreamArn": arn}, now)["StreamDescription"][
                "Shards"
            ]
        ]
        for n in range(ITERATORS):
            request = {
                "StreamArn": arn,
                "ShardId": shard_ids[n % len(shard_ids)],
                "ShardIteratorType": "TRIM_HORIZON",
            }
            token = emulator.get_shard_iterator(request, now)["ShardIterator"]
            if n % 10 == 0:  # some are even used once, then dropped
                emulator.get_records({"ShardIterator": token, "Limit": 5}, now)
        gc.collect()
        after_iterators = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()

    stats = emulator.stats()
    assert stats["records_retained"] == RECORDS
    assert stats["iterators_issued"] >= ITERATORS
    print(
        f"\nemulator memory: {after_writes / 1e6:.1f} MB after {RECORDS} writes "
        f"({stats['record_bytes'] / 1e6:.1f} MB of record JSON), "
        f"+{(after_iterators - after_writes) / 1e3:.1f} kB after {ITERATORS} iterators"
    )
    assert after_writes < MEMORY_BOUND
    assert after_writes < stats["record_bytes"] + PER_RECORD_OVERHEAD * RECORDS
    assert after_iterators - after_writes < ITERATOR_BOUND
