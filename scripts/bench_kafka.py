"""Kafka forwarding throughput: bridge's KafkaProcessor against a raw confluent-kafka producer.

Both send the same messages to the same broker in one run, interleaved round by round:

  raw       a confluent-kafka Producer with the same settings (idempotent, acks=all, same
            partitioner and linger) producing key/value/headers built beforehand, then
            flush(): the ceiling for this broker and client, with no per-change work at all.
  bridge    KafkaProcessorFactory + one KafkaProcessor per shard, fed batches of
            ChangeRecords built by ``ChangeRecord.from_raw`` (as the Streams client hands them
            over: images still DynamoDB JSON), every batch awaited until acknowledged, shards
            concurrent, as a worker runs them. Includes decoding the images and encoding the
            envelope, which "raw" does not pay for.

Two more lines explain the gap between them:

  raw, acked per round   the raw producer again, but waiting for every acknowledgement after
                         each shards x batch messages: as much in flight as bridge has, with
                         no encoding (what the checkpoint discipline alone costs).
  encode only            bridge's envelope encoding of the same records, nothing sent (the
                         CPU cost alone; this machine's cores are shared with the broker).

and the CPU time the producing Python thread spent per message on each side: with a single
event-loop thread, bridge cannot go faster than one message per that much CPU, however idle
the broker; raw's thread needs a fraction of that (librdkafka does its work in C threads).

The source is in-process (records built before timing), so the numbers are the forwarding
path alone, not DynamoDB or the Streams API.

    .venv/bin/python scripts/bench_kafka.py [--records 50000] [--shards 4] [--batch 1000]
                                            [--rounds 3] [--bootstrap-servers HOST:PORT]

Without ``--bootstrap-servers`` it starts its own tansu broker (memory storage).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import random
import statistics
import string
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.local.processes import KafkaBroker
from bridge.processors.api import Batch, EndReason
from bridge.processors.kafka import EnvelopeEncoder, KafkaProcessorFactory
from bridge.records import ChangeRecord, encode_item

SHARD = "shardId-00000001700000000000-{:08x}"


def make_item(rng: random.Random, n: int) -> dict[str, Any]:
    """An order of ~10 attributes of every DynamoDB type, about 600 bytes as DynamoDB JSON."""

    def word(k: int = 8) -> str:
        return "".join(rng.choices(string.ascii_lowercase, k=k))

    return {
        "pk": f"customer#{n % 997:05d}",
        "sk": f"order#{n:08d}",
        "status": rng.choice(["NEW", "PAID", "SHIPPED", "DELIVERED"]),
        "quantity": rng.randint(1, 50),
        "price": Decimal(rng.randint(100, 99_999)) / 100,
        "tags": {word(5) for _ in range(3)},
        "signature": rng.randbytes(16),
        "paid": rng.random() < 0.5,
        "address": {"street": f"{rng.randint(1, 999)} {word(10)} street", "city": word(7)},
        "lines": [{"sku": word(6), "qty": rng.randint(1, 5)} for _ in range(rng.randint(1, 3))],
    }


def make_raw_records(count: int, shards: int, seed: int = 7) -> list[list[dict[str, Any]]]:
    """Per shard, the records as GetRecords returns them (DynamoDB JSON, base64 binary)."""
    rng = random.Random(seed)
    now = int(datetime.now(UTC).timestamp())
    per_shard: list[list[dict[str, Any]]] = [[] for _ in range(shards)]
    for n in range(count):
        new = make_item(rng, n)
        old = {**new, "status": "NEW"}
        event = "MODIFY" if n % 3 else "INSERT"
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": now,
            "Keys": encode_item({"pk": new["pk"], "sk": new["sk"]}),
            "NewImage": encode_item(new),
            "SequenceNumber": f"{100000000000000000000 + n}",
            "SizeBytes": 600,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if event == "MODIFY":
            body["OldImage"] = encode_item(old)
        per_shard[n % shards].append(
            {"eventID": uuid.uuid4().hex, "eventName": event, "dynamodb": body}
        )
    return per_shard


def wrap(raw: list[list[dict[str, Any]]]) -> list[list[ChangeRecord]]:
    """Fresh, undecoded ChangeRecords (decoded images are cached, so never reuse them)."""
    return [
        [ChangeRecord.from_raw(record, SHARD.format(shard)) for record in records]
        for shard, records in enumerate(raw)
    ]


def chunks(records: list[ChangeRecord], size: int) -> Iterator[list[ChangeRecord]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


# --- the two sides ----------------------------------------------------------------------------

CPU_SECONDS = [0.0]
"""CPU time of the Python thread that produced, in the last run: the work that thread did,
whatever else (the broker, librdkafka's threads, other processes) competed for the cores."""


def producer_settings(factory: KafkaProcessorFactory) -> dict[str, str]:
    """Exactly what bridge's producer runs with, so "raw" differs only in the work around it."""
    return dict(factory.producer_config)


def run_raw(
    settings: dict[str, str],
    topic: str,
    messages: list[tuple[bytes, bytes | None, Any]],
    ack_every: int | None = None,
) -> float:
    producer = Producer({**settings, "client.id": "bench-raw"})
    delivered = 0
    failed = 0

    def on_delivery(error: Any, _message: Any) -> None:
        nonlocal delivered, failed
        if error is None:
            delivered += 1
        else:
            failed += 1

    producer.list_topics(topic, timeout=10)  # connected and warm, as bridge's open() is
    started = time.perf_counter()
    cpu_started = time.thread_time()
    for n, (key, value, headers) in enumerate(messages, 1):
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if ack_every and n % ack_every == 0:
            producer.flush(60)
    producer.flush(60)
    seconds = time.perf_counter() - started
    CPU_SECONDS[-1] = time.thread_time() - cpu_started
    if delivered != len(messages) or failed:
        raise RuntimeError(f"raw: {delivered} delivered, {failed} failed of {len(messages)}")
    return seconds


async def run_bridge(
    bootstrap: str, table: str, topic: str, shards: list[list[ChangeRecord]], batch: int
) -> float:
    factory = KafkaProcessorFactory(table, bootstrap_servers=bootstrap, topic=topic)
    await factory.open()
    processors = [factory.create(records[0].shard_id) for records in shards]

    async def shard(index: int) -> None:
        processor = processors[index]
        for records in chunks(shards[index], batch):
            await processor.process(Batch(records[0].shard_id, records))
        await processor.end(EndReason.SHUTDOWN)

    try:
        started = time.perf_counter()
        cpu_started = time.thread_time()
        await asyncio.gather(*(shard(i) for i in range(len(shards))))
        seconds = time.perf_counter() - started
        CPU_SECONDS[-1] = time.thread_time() - cpu_started
    finally:
        await factory.close()
    total = sum(len(records) for records in shards)
    if factory.stats.delivered != total or factory.stats.failed:
        raise RuntimeError(f"bridge: {factory.stats} for {total} records")
    return seconds


def run_encode_only(
    factory: KafkaProcessorFactory, shards: list[list[ChangeRecord]], batch: int
) -> float:
    started = time.perf_counter()
    for records in shards:
        for chunk in chunks(records, batch):
            factory.encode(chunk)
    return time.perf_counter() - started


def prepared(raw: list[list[dict[str, Any]]]) -> list[list[ChangeRecord]]:
    """Fresh records, with everything built so far kept out of the garbage collector's scans.

    A worker holds one batch per shard; this benchmark holds the whole source in memory, and
    letting every collection walk it would charge the side that allocates more (bridge) for
    the benchmark's own data.
    """
    records = wrap(raw)
    gc.collect()
    gc.freeze()
    return records


# --- driver -----------------------------------------------------------------------------------


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000, help="records per process() call")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap-servers", default=None)
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap_servers
        if bootstrap is None:
            log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-kafka"
            broker = stack.enter_context(KafkaBroker(log_dir=log_dir))
            bootstrap = broker.bootstrap_servers
        return bench(args, bootstrap)


def fresh_topic(bootstrap: str, kind: str, partitions: int) -> str:
    """Each run gets an empty topic: the in-memory broker slows down as its topics fill."""
    name = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, name, partitions)
    return name


def bench(args: argparse.Namespace, bootstrap: str) -> int:
    table = "bench-orders"
    raw = make_raw_records(args.records, args.shards)
    # The raw producer sends the very bytes bridge would: same keys, envelopes and headers.
    encoder = EnvelopeEncoder(table, include_old_image=True, tombstones=False)
    messages = [m for records in wrap(raw) for record in records for m in encoder.messages(record)]
    reference = KafkaProcessorFactory(table, bootstrap_servers=bootstrap, topic=table)
    settings = producer_settings(reference)
    size = sum(len(value or b"") for _, value, _ in messages) / len(messages)
    gc.collect()
    gc.freeze()
    in_flight = args.shards * args.batch

    print(f"python {sys.version.split()[0]} on {platform.machine()}, {os.cpu_count()} cpus")
    print(
        f"{args.records:,} changes ({size:.0f}-byte envelopes), {args.shards} shards, "
        f"batches of {args.batch}, {args.partitions} partitions, broker {bootstrap}"
    )
    print(f"load average at start: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    rates: dict[str, list[float]] = {"raw": [], "acked": [], "encode": [], "bridge": []}
    cpu: dict[str, list[float]] = {"raw": [], "bridge": []}
    for round_ in range(1, args.rounds + 1):
        topic = fresh_topic(bootstrap, "raw", args.partitions)
        rates["raw"].append(args.records / run_raw(settings, topic, messages))
        cpu["raw"].append(CPU_SECONDS[-1] / len(messages))
        topic = fresh_topic(bootstrap, "acked", args.partitions)
        rates["acked"].append(args.records / run_raw(settings, topic, messages, in_flight))
        encoding = run_encode_only(reference, prepared(raw), args.batch)
        rates["encode"].append(args.records / encoding)
        topic = fresh_topic(bootstrap, "bridge", args.partitions)
        seconds = asyncio.run(run_bridge(bootstrap, table, topic, prepared(raw), args.batch))
        rates["bridge"].append(args.records / seconds)
        cpu["bridge"].append(CPU_SECONDS[-1] / args.records)
        print(
            f"round {round_}: raw {rates['raw'][-1]:>9,.0f}   "
            f"raw acked per round {rates['acked'][-1]:>9,.0f}   "
            f"encode only {rates['encode'][-1]:>9,.0f}   bridge {rates['bridge'][-1]:>9,.0f}"
        )
    median = {name: statistics.median(values) for name, values in rates.items()}
    acked_label = f"raw, acked every {in_flight:,} msgs"
    print(f"raw confluent-kafka producer   : {median['raw']:>9,.0f} messages/s (median)")
    print(f"  {acked_label:<28} : {median['acked']:>9,.0f} messages/s")
    print(f"  bridge encoding only         : {median['encode']:>9,.0f} records/s")
    print(f"bridge KafkaProcessor          : {median['bridge']:>9,.0f} records/s (median)")
    print(f"ratio bridge / raw             : {median['bridge'] / median['raw']:.2f}")
    raw_cpu, bridge_cpu = (statistics.median(cpu[side]) * 1e6 for side in ("raw", "bridge"))
    print(
        f"producing thread's CPU per message: raw {raw_cpu:.1f} us, bridge {bridge_cpu:.1f} us "
        f"(load average at end: {' '.join(f'{n:.2f}' for n in os.getloadavg())})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
