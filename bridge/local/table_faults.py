"""Throttling, server errors and refusals on DynamoDB tables: the lease table under pressure,
or out of reach of a worker's permissions.

A burst names the tables it hits (every table when it names none), so a test can throttle the
lease table while the application's own table keeps taking the writes it studies. Throttling
and server errors hit item calls only, as on AWS, where a table's capacity is spent by reads
and writes and not by DescribeTable. A burst of an error code (``AccessDeniedException``,
``UnrecognizedClientException``) answers it to every call on those tables, CreateTable and
DescribeTable included, as a policy that denies them, or credentials that the service refuses,
would. Nothing is read from a request unless a burst is on: the DynamoDB path stays as cheap as
moto makes it.
"""

from __future__ import annotations

import io
import re
import types
from collections.abc import Callable, Iterable, Mapping
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


CAPACITY_KINDS = ("throttle", "error")
_ERROR_CODE = re.compile(r"^[A-Z][A-Za-z]{2,80}$")
_ANY_CALL = "*"
"""What a refusal's injector is asked about: it answers every call alike."""


def _throughput_exceeded() -> StreamsError:
    return ProvisionedThroughputExceededError(
        "The level of configured provisioned throughput for the table was exceeded "
        "(injected by bridge local)"
    )


_REFUSALS = {
    "AccessDeniedException": "User is not authorized to perform this action on this table",
    "UnrecognizedClientException": "The security token included in the request is invalid",
}


def _refusal(code: str) -> Callable[[], StreamsError]:
    """The answer of a burst of ``code``: HTTP 400, as DynamoDB answers a refused request."""
    error = types.new_class(code, (StreamsError,), {"code": code})
    message = f"{_REFUSALS.get(code, 'The request was refused')} (injected by bridge local)"

    def refuse() -> StreamsError:
        refused: StreamsError = error(message)
        return refused

    return refuse


class TableFaults:
    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._injector = FaultInjector(
            FaultSettings(seed=seed), operations=ITEM_OPERATIONS, throttled=_throughput_exceeded
        )
        self._tables: frozenset[str] = frozenset()
        self._refusals: FaultInjector | None = None
        self._refused_tables: frozenset[str] = frozenset()
        self._refused_code = ""
        self._refused_earlier = 0
        """Refusals injected by bursts before the current one."""

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
        """Fail the next ``count`` calls on ``tables``, or ``rate`` of them for ``seconds``:
        item calls for ``throttle`` and ``error``, every call for an error code."""
        if kind in CAPACITY_KINDS:
            self._injector.burst(now, kind=kind, count=count, rate=rate, seconds=seconds)
            self._tables = frozenset(tables)
            return
        if not _ERROR_CODE.match(kind):
            raise ValueError(
                f"kind must be {' or '.join(CAPACITY_KINDS)}, or an error code such as "
                f"AccessDeniedException; got {kind!r}"
            )
        refusals = FaultInjector(
            FaultSettings(seed=self._seed),
            operations=frozenset({_ANY_CALL}),
            throttled=_refusal(kind),
        )
        refusals.burst(now, kind="throttle", count=count, rate=rate, seconds=seconds)
        if self._refusals is not None:
            self._refused_earlier += self._refusals.injected
        self._refusals, self._refused_tables, self._refused_code = refusals, frozenset(tables), kind

    def fault_for(self, operation: str, environ: dict[str, Any], now: float) -> StreamsError | None:
        """The error this DynamoDB call fails with, or None. Reads the request body to learn
        its tables, and puts it back for moto."""
        refusals = self._refusals
        refusing = refusals is not None and refusals.bursting(now)
        capacity = operation in ITEM_OPERATIONS and self._injector.bursting(now)
        if not refusing and not capacity:
            return None
        raw = get_input_stream(environ).read()
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        environ.pop("wsgi.input_terminated", None)
        touched = tables_of(raw)
        if refusing and refusals is not None and _hits(self._refused_tables, touched):
            refusal = refusals.fault_for(_ANY_CALL, now)
            if refusal is not None:
                return refusal
        if capacity and _hits(self._tables, touched):
            return self._injector.fault_for(operation, now)
        return None

    def describe(self, now: float) -> dict[str, object]:
        described = self._injector.describe(now)
        burst = described["burst"]
        if isinstance(burst, dict):
            burst = {**burst, "tables": sorted(self._tables) or "all"}
        injected = described["injected"]
        assert isinstance(injected, int)
        refused: object = None
        if self._refusals is not None:
            injected += self._refused_earlier + self._refusals.injected
            refusal = self._refusals.describe(now)["burst"]
            if isinstance(refusal, dict):
                tables = sorted(self._refused_tables) or "all"
                refused = {**refusal, "kind": self._refused_code, "tables": tables}
        return {"injected": injected, "burst": burst, "refusal": refused}


def _hits(named: frozenset[str], touched: frozenset[str]) -> bool:
    return not named or bool(named & touched)


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
