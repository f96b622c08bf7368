"""GetRecords decode throughput: bridge's fast path against botocore's parser, same bytes.

Builds realistic GetRecords response bodies once (1,000 records each by default: MODIFY,
INSERT and REMOVE changes of a NEW_AND_OLD_IMAGES stream, items of ~10 attributes of every
type: strings, integers, decimals, maps, lists, string/number/binary sets, binary, booleans,
null), then times, interleaved round by round in one process:

  botocore          botocore's JSON parser with the GetRecords output shape: exactly what
                    aiobotocore's ``get_records`` returns (records as DynamoDB JSON dicts,
                    binary decoded, timestamps as datetimes); no plain values yet.
  fast (lazy)       bridge's fast path decode: orjson + a ``ChangeRecord`` per record, as
                    ``StreamsClient.get_records`` returns them; images decoded on access.
  botocore + images botocore's parser, then boto3's ``TypeDeserializer`` over keys and both
                    images: what a boto3 user needs to reach plain Python values.
  fast + images     the fast path, then every record's keys, new and old image and creation
                    time read: the same plain values as "botocore + images", and more
                    (ints where integral, datetimes).

Neither side includes the network, signing or HTTP: they decode the same bytes in memory.

    .venv/bin/python scripts/bench_decode.py [--records 1000] [--bodies 4] [--rounds 9]
                                             [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import platform
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.parsers
import botocore.session
import orjson
from boto3.dynamodb.types import Binary, TypeDeserializer

from bridge.records import encode_item
from bridge.streams.model import ShardIterator, parse_get_records

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
SHARD_ID = "shardId-00000001700000000000-0a1b2c3d"


# --- recorded bodies ------------------------------------------------------------------------


def make_item(rng: random.Random, n: int) -> dict[str, Any]:
    def word(k: int = 8) -> str:
        return "".join(rng.choices(string.ascii_lowercase, k=k))

    return {
        "pk": f"customer#{n % 997:05d}",
        "sk": f"order#{n:08d}",
        "status": rng.choice(["NEW", "PAID", "SHIPPED", "DELIVERED"]),
        "quantity": rng.randint(1, 50),
        "price": Decimal(rng.randint(100, 99_999)) / 100,
        "tags": {word(5) for _ in range(3)},
        "scores": {rng.randint(1, 1000), Decimal(rng.randint(1, 9999)) / 10},
        "signature": rng.randbytes(32),
        "address": {
            "street": f"{rng.randint(1, 999)} {word(10)} street",
            "city": word(7),
            "zip": f"{rng.randint(10000, 99999)}",
            "geo": {"lat": Decimal("48.8566"), "lon": Decimal("2.3522")},
        },
        "lines": [
            {"sku": word(6), "qty": rng.randint(1, 5), "unit": Decimal(rng.randint(1, 9999)) / 100}
            for _ in range(rng.randint(1, 3))
        ],
        "gift": rng.random() < 0.2,
        "note": None if rng.random() < 0.5 else word(20),
        "thumbs": {rng.randbytes(8), rng.randbytes(8)},
    }


def make_record(rng: random.Random, n: int, sequence: int) -> dict[str, Any]:
    item = make_item(rng, n)
    roll = rng.random()
    event = "MODIFY" if roll < 0.6 else "INSERT" if roll < 0.9 else "REMOVE"
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1_767_225_600 + n,
        "Keys": encode_item({"pk": item["pk"], "sk": item["sk"]}),
        "SequenceNumber": str(sequence),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if event != "REMOVE":
        dynamodb["NewImage"] = encode_item(item)
    if event != "INSERT":
        old = dict(item, status="NEW", quantity=item["quantity"] + 1)
        dynamodb["OldImage"] = encode_item(old)
    dynamodb["SizeBytes"] = len(orjson.dumps(dynamodb))
    return {
        "eventID": f"{rng.getrandbits(128):032x}",
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
    }


def make_bodies(records: int, bodies: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sequence = 10**20
    out = []
    for b in range(bodies):
        page = []
        for i in range(records):
            sequence += 1
            page.append(make_record(rng, b * records + i, sequence))
        token = base64.b64encode(rng.randbytes(472)).decode()
        body = {"Records": page, "NextShardIterator": f"{STREAM_ARN}|1|{token}"}
        out.append(json.dumps(body, separators=(",", ":")).encode())  # AWS sends compact JSON
    return out


# --- the decoders ---------------------------------------------------------------------------


def botocore_decoder() -> Callable[[bytes], list[Any]]:
    model = botocore.session.get_session().get_service_model("dynamodbstreams")
    shape = model.operation_model("GetRecords").output_shape
    parser = botocore.parsers.create_parser("json")
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "bench"}

    def decode(body: bytes) -> list[Any]:
        parsed = parser.parse({"status_code": 200, "headers": headers, "body": body}, shape)
        return list(parsed["Records"])

    return decode


def botocore_with_images() -> Callable[[bytes], list[Any]]:
    parse = botocore_decoder()
    deserialize = TypeDeserializer().deserialize

    def decode(body: bytes) -> list[Any]:
        out = []
        for record in parse(body):
            change = record["dynamodb"]
            keys = {k: deserialize(v) for k, v in change["Keys"].items()}
            new = {k: deserialize(v) for k, v in change.get("NewImage", {}).items()}
            old = {k: deserialize(v) for k, v in change.get("OldImage", {}).items()}
            out.append((record, keys, new, old))
        return out

    return decode


def fast_decoder() -> Callable[[bytes], list[Any]]:
    iterator = ShardIterator("bench", stream_arn=STREAM_ARN, shard_id=SHARD_ID)

    def decode(body: bytes) -> list[Any]:
        return parse_get_records(body, iterator).records

    return decode


def fast_with_images() -> Callable[[bytes], list[Any]]:
    parse = fast_decoder()

    def decode(body: bytes) -> list[Any]:
        records = parse(body)
        for record in records:
            _ = (record.keys, record.new_image, record.old_image, record.approximate_creation_time)
        return records

    return decode


DECODERS: dict[str, Callable[[], Callable[[bytes], list[Any]]]] = {
    "botocore": botocore_decoder,
    "fast (lazy)": fast_decoder,
    "botocore + images": botocore_with_images,
    "fast + images": fast_with_images,
}


# --- checks and timing ----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """TypeDeserializer's output in bridge's terms: int where integral, bytes for Binary."""
    if isinstance(value, Binary):
        return bytes(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


def check_same_values(body: bytes) -> None:
    """Both sides must produce the same records, or the race means nothing."""
    slow = botocore_with_images()(body)
    fast = fast_decoder()(body)
    assert len(slow) == len(fast), (len(slow), len(fast))
    for (record, keys, new, old), change in zip(slow, fast, strict=True):
        assert record["dynamodb"]["SequenceNumber"] == change.sequence_number
        assert record["eventName"] == change.event
        assert record["dynamodb"]["ApproximateCreationDateTime"] == change.approximate_creation_time
        assert _plain(keys) == change.keys
        assert _plain(new) == (change.new_image or {})
        assert _plain(old) == (change.old_image or {})


def time_rounds(bodies: list[bytes], rounds: int) -> dict[str, list[float]]:
    decoders = {name: factory() for name, factory in DECODERS.items()}
    records = sum(len(decoders["fast (lazy)"](body)) for body in bodies)
    rates: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(rounds):
        # Interleaved so that noise from other processes on the machine hits every side alike.
        for name, decode in decoders.items():
            gc.collect()
            start = time.perf_counter()
            for body in bodies:
                decode(body)
            rates[name].append(records / (time.perf_counter() - start))
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000, help="records per response body")
    parser.add_argument("--bodies", type=int, default=4, help="distinct response bodies")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds per decoder")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    bodies = make_bodies(args.records, args.bodies, args.seed)
    check_same_values(bodies[0])
    rates = time_rounds(bodies, args.rounds)
    median = {name: statistics.median(values) for name, values in rates.items()}
    ratios = {
        "fast (lazy) / botocore": median["fast (lazy)"] / median["botocore"],
        "fast + images / botocore + images": median["fast + images"] / median["botocore + images"],
        "fast + images / botocore": median["fast + images"] / median["botocore"],
    }

    size = sum(map(len, bodies)) / len(bodies)
    print(
        f"{args.bodies} bodies x {args.records} records ({size / 1e6:.2f} MB each), "
        f"{args.rounds} rounds, median records/s, Python {platform.python_version()}"
    )
    print(f"{'decoder':<20}{'records/s':>14}{'min':>14}{'max':>14}")
    for name, values in rates.items():
        print(f"{name:<20}{median[name]:>14,.0f}{min(values):>14,.0f}{max(values):>14,.0f}")
    for name, ratio in ratios.items():
        print(f"{name:<36}{ratio:>8.1f}x")

    if args.json:
        result = {
            "records_per_body": args.records,
            "bodies": args.bodies,
            "body_bytes_mean": size,
            "rounds": args.rounds,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "records_per_second": {name: round(value) for name, value in median.items()},
            "records_per_second_all_rounds": {
                name: [round(v) for v in values] for name, values in rates.items()
            },
            "ratios": {name: round(value, 2) for name, value in ratios.items()},
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
