"""Volume: the shard tree accounts for every record once, and memory stays bounded.

Writes go over HTTP in BatchWriteItem requests of 25 (moto takes about 3,000 items/s that way,
against about 250 single PutItems/s); everything is read back over HTTP with boto3. The
endpoint's memory is its own process's resident set, read from the control API. A precise
count of what the emulator itself holds comes from tracemalloc on the core, with no HTTP.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from bridge.local import LocalEndpoint
from bridge.local.emulator import (
    CapturedChange,
    StreamIdentity,
    StreamsEmulator,
    StreamSettings,
    parse_sequence,
)
from tests.local.stream_reading import create_table, describe_all, parent_first, read_shard

MakeEndpoint = Callable[..., LocalEndpoint]
KEYS = 5000
BATCH = 25


def item(n: int) -> dict[str, Any]:
    """The n-th write: 5,000 keys written over and over, so most writes are MODIFYs."""
    return {
        "pk": {"S": f"item-{n % KEYS:05d}"},
        "n": {"N": str(n)},
        "status": {"S": "shipped"},
    }


def batch_write(ddb: Any, table: str, first: int, count: int) -> None:
    """Writes ``first`` .. ``first + count - 1`` in order, 25 to a request."""
    for start in range(first, first + count, BATCH):
        stop = min(start + BATCH, first + count)
        pending: dict[str, Any] = {
            table: [{"PutRequest": {"Item": item(n)}} for n in range(start, stop)]
        }
        while pending:  # moto never leaves any unprocessed, but a client must be ready to
            pending = ddb.batch_write_item(RequestItems=pending)["UnprocessedItems"]


def clients(endpoint: LocalEndpoint) -> tuple[Any, Any]:
    url = endpoint.endpoint_url
    return (
        boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1"),
        boto3.client("dynamodbstreams", endpoint_url=url, region_name="us-east-1"),
    )


# -- every record exactly once --------------------------------------------------------------


@pytest.mark.parametrize(
    ("writes", "rotate_every"),
    [
        pytest.param(6_000, 60, id="6k"),  # 100-odd shards: more than a page
        pytest.param(100_000, 1000, id="100k", marks=pytest.mark.slow),
    ],
)
def test_reading_the_shard_tree_parent_first_yields_every_record_once(
    make_local_endpoint: MakeEndpoint, writes: int, rotate_every: int
) -> None:
    endpoint = make_local_endpoint(rotate_records=rotate_every)
    ddb, streams = clients(endpoint)
    table, arn = create_table(ddb, "scale")
    started = time.monotonic()
    batch_write(ddb, table, 0, writes)
    written_in = time.monotonic() - started

    shards = describe_all(streams, arn)
    closed = [s for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert len(closed) >= writes // rotate_every - 8  # only the open leaves are partly full
    by_id = {s["ShardId"]: s for s in shards}
    seen: dict[str, list[int]] = {}
    sequences: list[int] = []
    for shard in parent_first(shards):
        records = read_shard(streams, arn, shard)
        for record in records:
            image = record["dynamodb"]["NewImage"]
            seen.setdefault(image["pk"]["S"], []).append(int(image["n"]["N"]))
        found = [parse_sequence(r["dynamodb"]["SequenceNumber"]) for r in records]
        start = parse_sequence(shard["SequenceNumberRange"]["StartingSequenceNumber"])
        assert found == list(range(start, start + len(found))), "numbers of a shard are dense"
        if shard in closed:
            assert len(found) == rotate_every
            assert found[-1] == parse_sequence(shard["SequenceNumberRange"]["EndingSequenceNumber"])
        parent = by_id.get(shard.get("ParentShardId", ""))
        if parent is not None:
            assert start > parse_sequence(parent["SequenceNumberRange"]["EndingSequenceNumber"])
        sequences += found
    read_in = time.monotonic() - started - written_in
    print(
        f"\n{writes} writes over HTTP in {written_in:.1f}s, {len(shards)} shards "
        f"({len(closed)} closed) read back in {read_in:.1f}s"
    )
    assert len(sequences) == writes
    assert len(set(sequences)) == writes
    written: dict[str, list[int]] = {}
    for n in range(writes):
        written.setdefault(f"item-{n % KEYS:05d}", []).append(n)
    assert seen == written  # every write once, each key's writes in the order made


# -- memory ---------------------------------------------------------------------------------

# A record here carries both images of a 3-attribute item: about 480 bytes of JSON. The
# emulator keeps each as one bytes object plus 8 bytes of creation time, so 100,000 records
# measure about 53 MB; iterators are signed tokens and add nothing.
PER_RECORD_OVERHEAD = 80  # bytes the emulator holds per record beyond the record's own JSON
ITERATOR_BOUND = 256 * 1024  # bytes for all abandoned iterators together: noise, not growth
# The whole endpoint process (moto's table of 5,000 items, the emulator, the HTTP server) may
# grow by this much over 100,000 writes and 10,000 abandoned iterators. Measured: about 67 MB;
# before bridge local stopped moto tracking every Item it ever made (server.py), 154 MB.
ENDPOINT_GROWTH_BOUND = 100 * 10**6
ENDPOINT_ITERATOR_BOUND = 8 * 1024 * 1024  # RSS is coarse: allocator pages, not objects

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/mem/stream/2024-01-01T00:00:00.000"
T0 = 1_700_000_000.0


def core_emulator(settings: StreamSettings) -> StreamsEmulator:
    emulator = StreamsEmulator(settings, seed=5)
    identity = StreamIdentity(ARN, "mem", "L", "NEW_AND_OLD_IMAGES", (("pk", "HASH"),), "us-east-1")
    emulator.create_stream(identity, T0)
    return emulator


def core_write(emulator: StreamsEmulator, n: int, now: float) -> None:
    key = b'{"S":"item-%05d"}' % (n % KEYS)
    new = b'{"pk":%s,"n":{"N":"%d"},"status":{"S":"shipped"}}' % (key, n)
    old = None if n < KEYS else new.replace(b'"%d"' % n, b'"%d"' % (n - KEYS))
    change = CapturedChange("MODIFY" if old else "INSERT", key, b'{"pk":%s}' % key, new, old)
    emulator.record_change(ARN, change, now)


def abandon_iterators(emulator: StreamsEmulator, count: int, now: float) -> None:
    listed = emulator.describe_stream({"StreamArn": ARN}, now)["StreamDescription"]
    shard_ids = [s["ShardId"] for s in listed["Shards"]]  # type: ignore[attr-defined]
    for n in range(count):
        request = {
            "StreamArn": ARN,
            "ShardId": shard_ids[n % len(shard_ids)],
            "ShardIteratorType": "TRIM_HORIZON",
        }
        token = emulator.get_shard_iterator(request, now)["ShardIterator"]
        if n % 10 == 0:  # some are even used once, then dropped
            emulator.get_records({"ShardIterator": token, "Limit": 5}, now)


def traced_bytes(base: int) -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - base


@pytest.mark.parametrize(
    ("records", "iterators"),
    [
        pytest.param(20_000, 2_000, id="20k"),
        pytest.param(100_000, 10_000, id="100k", marks=pytest.mark.slow),
    ],
)
def test_the_emulator_holds_records_and_nothing_per_iterator(records: int, iterators: int) -> None:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        emulator = core_emulator(StreamSettings(rotate_records=1000))
        for n in range(records):
            core_write(emulator, n, T0)
        after_writes = traced_bytes(base)
        abandon_iterators(emulator, iterators, T0)
        after_iterators = traced_bytes(base)
    finally:
        tracemalloc.stop()

    stats = emulator.stats()
    assert stats["records_retained"] == records
    assert stats["iterators_issued"] >= iterators
    print(
        f"\nemulator memory: {after_writes / 1e6:.1f} MB after {records} writes "
        f"({stats['record_bytes'] / 1e6:.1f} MB of record JSON), "
        f"{(after_iterators - after_writes) / 1e3:+.1f} kB after {iterators} iterators"
    )
    assert after_writes < stats["record_bytes"] + PER_RECORD_OVERHEAD * records
    assert after_iterators - after_writes < ITERATOR_BOUND


def test_a_long_run_holds_only_what_retention_keeps() -> None:
    """24,000 writes over 6 hours with 1 hour of retention: memory follows the last hour."""
    writes, hours = 24_000, 6
    settings = StreamSettings(rotate_records=1000, retention_seconds=3600)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        emulator = core_emulator(settings)
        peaks: list[int] = []
        per_hour = writes // hours
        for hour in range(hours):
            for n in range(hour * per_hour, (hour + 1) * per_hour):
                core_write(emulator, n, T0 + n * 3600 / per_hour)
            peaks.append(traced_bytes(base))
        abandon_iterators(emulator, 2000, T0 + hours * 3600)
        end = traced_bytes(base)
    finally:
        tracemalloc.stop()

    stats = emulator.stats()
    print(
        "\nemulator memory, hour by hour: "
        + ", ".join(f"{peak / 1e6:.1f}" for peak in peaks)
        + f" MB; {end / 1e6:.1f} MB with {stats['records_retained']} records retained"
    )
    assert stats["records_written"] == writes
    assert stats["records_retained"] <= per_hour * 1.01 + 1  # writes trim up to 1% late
    assert stats["records_trimmed"] == writes - stats["records_retained"]
    assert stats["shards_open"] + stats["shards_closed"] <= 2 * per_hour // 1000 + 16
    # each hour past the first adds as much as it trims: the footprint stops growing
    assert max(peaks[1:]) < 1.3 * peaks[1]
    assert end < stats["record_bytes"] + PER_RECORD_OVERHEAD * 1.01 * per_hour + ITERATOR_BOUND


@pytest.mark.slow
def test_endpoint_memory_after_100k_writes_and_10k_abandoned_iterators(
    make_local_endpoint: MakeEndpoint,
) -> None:
    endpoint = make_local_endpoint(rotate_records=1000)
    ddb, streams = clients(endpoint)
    table, arn = create_table(ddb, "mem")
    before = endpoint.stats()["rss_bytes"]
    batch_write(ddb, table, 0, 100_000)
    after_writes = endpoint.stats()
    shard_ids = [s["ShardId"] for s in describe_all(streams, arn)]
    for n in range(10_000):
        token = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard_ids[n % len(shard_ids)], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        if n % 10 == 0:
            streams.get_records(ShardIterator=token, Limit=5)
    after_iterators = endpoint.stats()

    growth = after_iterators["rss_bytes"] - before
    print(
        f"\nendpoint RSS: {before / 1e6:.1f} MB at start, "
        f"{after_writes['rss_bytes'] / 1e6:.1f} MB after 100000 writes "
        f"({after_writes['record_bytes'] / 1e6:.1f} MB of record JSON), "
        f"{after_iterators['rss_bytes'] / 1e6:.1f} MB after 10000 iterators: "
        f"grew {growth / 1e6:.1f} MB (bound {ENDPOINT_GROWTH_BOUND / 1e6:.0f} MB)"
    )
    assert after_iterators["records_retained"] == 100_000
    assert after_iterators["iterators_issued"] >= 10_000
    assert after_iterators["iterators_held"] == 0
    assert growth < ENDPOINT_GROWTH_BOUND
    assert after_iterators["rss_bytes"] - after_writes["rss_bytes"] < ENDPOINT_ITERATOR_BOUND
