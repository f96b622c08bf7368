"""Throttling and server errors on DynamoDB tables: the lease table under pressure.

A burst names the tables it hits (every table when it names none), so a test can throttle the
lease table while the application's own table keeps taking the writes it studies. Only item
calls fail, as on AWS, where a table's capacity is spent by reads and writes and not by
DescribeTable. Nothing is read from a request unless a burst is on: the DynamoDB path stays as
cheap as moto makes it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from werkzeug.wsgi import get_input_stream

from bridge.local.emulator import (
    FaultInjector,
    FaultSettings,
    ProvisionedThroughputExceededError,
    StreamsError,
)

ITEM_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def _throughput_exceeded() -> StreamsError:
    return ProvisionedThroughputExceededError(
        "The level of configured provisioned throughput for the table was exceeded "
        "(injected by bridge local)"
    )


class TableFaults:
    def __init__(self, seed: int | None = None) -> None:
        self._injector = FaultInjector(
            FaultSettings(seed=seed), operations=ITEM_OPERATIONS, throttled=_throughput_exceeded
        )
        self._tables: frozenset[str] = frozenset()

    def burst(
        self,
        now: float,
        *,
        tables: Iterable[str] = (),
        kind: str = "throttle",
        count: int = 0,
        rate: float = 1.0,
        seconds: float = 0.0,
    ) -> None:
        """Fail the next ``count`` item calls on ``tables``, or ``rate`` of them for ``seconds``."""
        self._injector.burst(now, kind=kind, count=count, rate=rate, seconds=seconds)
        self._tables = frozenset(tables)

    def fault_for(self, operation: str, environ: dict[str, Any], now: float) -> StreamsError | None:
        """The error this DynamoDB call fails with, or None. Reads the request body to learn
        its tables, and puts it back for moto."""
        if operation not in ITEM_OPERATIONS or not self._injector.bursting(now):
            return None
        raw = get_input_stream(environ).read()
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        environ.pop("wsgi.input_terminated", None)
        if self._tables and not self._tables & tables_of(raw):
            return None
        return self._injector.fault_for(operation, now)

    def describe(self, now: float) -> dict[str, object]:
        described = self._injector.describe(now)
        burst = described["burst"]
        if isinstance(burst, dict):
            burst = {**burst, "tables": sorted(self._tables) or "all"}
        return {"injected": described["injected"], "burst": burst}


def tables_of(raw: bytes) -> frozenset[str]:
    """The tables a DynamoDB request touches: ``TableName``, a batch's ``RequestItems`` or a
    transaction's items. A body that is not JSON touches none (moto will answer it)."""
    try:
        request = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return frozenset()
    if not isinstance(request, dict):
        return frozenset()
    names = set()
    if isinstance(request.get("TableName"), str):
        names.add(request["TableName"])
    if isinstance(request.get("RequestItems"), Mapping):
        names.update(request["RequestItems"])
    for item in request.get("TransactItems") or ():
        for action in item.values() if isinstance(item, Mapping) else ():
            if isinstance(action, Mapping) and isinstance(action.get("TableName"), str):
                names.add(action["TableName"])
    return frozenset(names)
