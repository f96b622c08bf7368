"""A counting ``bridge local`` and a real Kafka broker, as child processes."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import orjson

from bridge.local.endpoint import LocalEndpoint

SCRIPTS = Path(__file__).resolve().parents[1]


class CountedEndpoint(LocalEndpoint):
    """``bridge local`` (same options as LocalEndpoint) that also counts every API call."""

    name = "bench-local"

    def command(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "benchlib.counted_local",
            "--port",
            str(self.port),
            *self.options,
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPTS), env.get("PYTHONPATH")]))
        return env

    def counts(self) -> Counter[str]:
        """Calls so far by ``"Operation table"`` (``"GetRecords"`` for Streams calls)."""
        with urllib.request.urlopen(f"{self.endpoint_url}/_bench/counts", timeout=30) as answer:
            return Counter(orjson.loads(answer.read()))


def calls(before: Counter[str], after: Counter[str], operation: str, table: str = "") -> int:
    """How many ``operation`` calls (on ``table``, or on any table) happened in between."""
    total = 0
    for key, value in after.items():
        op, _, name = key.partition(" ")
        if op == operation and (not table or name == table):
            total += value - before.get(key, 0)
    return total


READ_OPERATIONS = ("GetItem", "Query", "Scan", "BatchGetItem", "DescribeTable")
WRITE_OPERATIONS = (
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "CreateTable",
)


def table_calls(before: Counter[str], after: Counter[str], table: str) -> dict[str, int]:
    """Read and write requests on one table in between (DescribeTable counts as a read)."""
    reads = sum(calls(before, after, op, table) for op in READ_OPERATIONS)
    writes = sum(calls(before, after, op, table) for op in WRITE_OPERATIONS)
    return {"reads": reads, "writes": writes}


def table_operations(before: Counter[str], after: Counter[str], table: str) -> dict[str, int]:
    """Calls on ``table`` in between, by operation (those that made none left out)."""
    made = {key.partition(" "): n - before.get(key, 0) for key, n in sorted(after.items())}
    return {operation: n for (operation, _, name), n in made.items() if name == table and n}


Capacity = dict[str, dict[str, dict[str, float]]]
"""``bridge local``'s ``GET /_bridge/capacity``: table -> operation -> calls and units."""


def units(before: Capacity, after: Capacity, table: str) -> dict[str, float]:
    """Read and write capacity units billed on ``table`` in between, as DynamoDB bills them
    (bytes read and written: bridge local's capacity meter)."""
    total = {"read": 0.0, "write": 0.0}
    for operation, used in after.get(table, {}).items():
        earlier = before.get(table, {}).get(operation, {})
        total["read"] += used["read_units"] - earlier.get("read_units", 0.0)
        total["write"] += used["write_units"] - earlier.get("write_units", 0.0)
    return total


def operation_units(before: Capacity, after: Capacity, table: str) -> dict[str, float]:
    """Units (read and write together) billed on ``table`` in between, by operation."""
    made = {}
    for operation, used in after.get(table, {}).items():
        earlier = before.get(table, {}).get(operation, {})
        spent = sum(used[k] - earlier.get(k, 0.0) for k in ("read_units", "write_units"))
        if spent:
            made[operation] = round(spent, 1)
    return made
