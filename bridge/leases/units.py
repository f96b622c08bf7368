"""The lease and coordination tables' capacity units, as DynamoDB reports them to each call.

DynamoDB bills by bytes (a Scan by all it read, a write per kilobyte), not by request, so
counting requests hides what the lease table costs. Every call bridge makes to those tables
asks for ``ReturnConsumedCapacity`` (through botocore's events, so the leader's lock client,
which is not ours, is counted too) and adds what the answer reports, by table and operation.
Against ``bridge local`` the numbers come from its capacity meter, computed by the same rules.
One gap, as on AWS: a refused conditional write is billed but its error reports no capacity,
so those units appear only in ``bridge local``'s ``/_bridge/capacity``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from bridge.core.capacity import METERED_OPERATIONS, READ_OPERATIONS

OnUnits = Callable[[str, str, float, float], None]
"""Called with (table, operation, read units, write units) after each call."""


def count_units(client: Any, tables: Collection[str], on_units: OnUnits) -> None:
    """Make ``client`` (boto3 or aiobotocore, DynamoDB) report the units of its calls to
    ``tables`` to ``on_units``; calls to other tables are left as they are."""
    wanted = frozenset(tables)

    def ask(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in METERED_OPERATIONS and _tables_of(params) & wanted:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def record(parsed: Mapping[str, Any], model: Any, **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity") if isinstance(parsed, Mapping) else None
        if not consumed or model.name not in METERED_OPERATIONS:
            return
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            table = entry.get("TableName")
            if table in wanted:
                read, write = _split(model.name, entry)
                on_units(table, model.name, read, write)

    client.meta.events.register("provide-client-params.dynamodb", ask)
    client.meta.events.register("after-call.dynamodb", record)


def _tables_of(params: Mapping[str, Any]) -> set[str]:
    names = {params["TableName"]} if isinstance(params.get("TableName"), str) else set()
    names |= set(params.get("RequestItems") or {})
    for entry in params.get("TransactItems") or []:
        names |= {member.get("TableName") for member in entry.values()}
    return names


def _split(operation: str, entry: Mapping[str, Any]) -> tuple[float, float]:
    """(read, write) units of one ConsumedCapacity entry; answers that give only the total
    are read or write by the operation."""
    total = float(entry.get("CapacityUnits", 0.0))
    if "ReadCapacityUnits" in entry or "WriteCapacityUnits" in entry:
        return float(entry.get("ReadCapacityUnits", 0.0)), float(
            entry.get("WriteCapacityUnits", 0.0)
        )
    return (total, 0.0) if operation in READ_OPERATIONS else (0.0, total)
