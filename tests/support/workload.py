"""Writes with a per-key version counter, and the checks that every change arrived in order.

Key ``k0042`` is written with ``version`` 1, 2, 3, ...; a consumer that saw every change once,
in order per key, saw exactly ``[1, 2, ..., n]`` for it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

BATCH = 25  # BatchWriteItem's limit


def create_table(ddb: Any, prefix: str = "w") -> tuple[str, str]:
    """A fresh table with a NEW_AND_OLD_IMAGES stream; returns (name, stream ARN)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name, ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def key_name(index: int) -> str:
    return f"k{index:04d}"


def plan_writes(writes: int, keys: int, seed: int = 7) -> list[tuple[str, int]]:
    """``writes`` (key, version) pairs over ``keys`` keys in a shuffled order: round r writes
    every key's version r + 1 in a fresh random order."""
    rng = random.Random(seed)
    plan: list[tuple[str, int]] = []
    version = 0
    while len(plan) < writes:
        version += 1
        order = list(range(keys))
        rng.shuffle(order)
        plan += [(key_name(k), version) for k in order[: writes - len(plan)]]
    return plan


def batches(plan: Iterable[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    """Batches of up to 25 writes, never one key twice (BatchWriteItem refuses that)."""
    batch: list[tuple[str, int]] = []
    keys: set[str] = set()
    for key, version in plan:
        if len(batch) == BATCH or key in keys:
            yield batch
            batch, keys = [], set()
        batch.append((key, version))
        keys.add(key)
    if batch:
        yield batch


def write_batch(ddb: Any, table: str, batch: Sequence[tuple[str, int]]) -> None:
    items = [
        {"PutRequest": {"Item": {"pk": {"S": key}, "version": {"N": str(version)}}}}
        for key, version in batch
    ]
    request: dict[str, Any] = {table: items}
    while request:  # retry what DynamoDB left unprocessed, in order, before the next batch
        request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


@dataclass
class Writer:
    """Writes a plan batch by batch; ``written`` is what DynamoDB accepted so far."""

    ddb: Any
    table: str
    plan: list[tuple[str, int]]
    written: list[tuple[str, int]] = field(default_factory=list)

    def write(self, count: int | None = None) -> None:
        """Write the next ``count`` writes of the plan (all that are left by default)."""
        end = len(self.plan) if count is None else min(len(self.plan), len(self.written) + count)
        for batch in batches(self.plan[len(self.written) : end]):
            write_batch(self.ddb, self.table, batch)
            self.written += batch


def versions_by_key(seen: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """The versions each key was seen with, in the order they were seen."""
    out: dict[str, list[int]] = {}
    for key, version in seen:
        out.setdefault(key, []).append(version)
    return out


def expected_versions(plan: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    return versions_by_key(plan)
