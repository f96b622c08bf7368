"""What each DynamoDB item call at ``bridge local`` would cost on DynamoDB, in capacity units.

moto answers ``ReturnConsumedCapacity`` with a fixed number per request; DynamoDB bills by
bytes (``bridge.core.capacity``): a Scan by everything it read, a write by the larger of the
item before and after it, a failed conditional write too, each global secondary index it
changes besides. The meter works that out from moto's own state (read under the moto lock,
before and after each write) and the items each read touched, counts it per table and
operation (``GET /_bridge/capacity``), and puts it in the answer's ``ConsumedCapacity`` when
the request asks (``ReturnConsumedCapacity``), so a worker's unit metrics read the same
numbers here as on AWS. Throttled calls (table faults) never reach the meter: DynamoDB does
not bill them either.
"""

from __future__ import annotations

import io
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.core.capacity import (
    METERED_OPERATIONS,
    READ_OPERATIONS,
    index_write_units,
    item_size,
    page_read_units,
    read_units,
    write_units,
)
from bridge.local.moto_state import find_table, global_indexes, key_of, stored_item
from bridge.local.streams_http import signing_region
from bridge.local.wsgi import peek_json

METERED = METERED_OPERATIONS
# Request members that make a Query or Scan answer less than it read: its units are counted
# from the same page read without them.
_NARROWING = (
    "FilterExpression",
    "ProjectionExpression",
    "AttributesToGet",
    "QueryFilter",
    "ScanFilter",
    "Select",
    "ConditionalOperator",
)
_BILLED_FAILURES = (b"ConditionalCheckFailedException", b"TransactionCanceledException")

_RECOMPUTED = frozenset({"content-length", "x-amz-crc32"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class Charge:
    """The units of one call on one table."""

    read: float = 0.0
    write: float = 0.0
    indexes: dict[str, float] = field(default_factory=dict)


@dataclass
class Usage:
    calls: int = 0
    read_units: float = 0.0
    write_units: float = 0.0


@dataclass
class _Write:
    """One item a write call touches: where, and what it was before."""

    table: Any
    name: str
    key: dict[str, Any]
    before: dict[str, Any] | None
    transactional: bool = False


class CapacityMeter:
    def __init__(self) -> None:
        self._usage: dict[tuple[str, str], Usage] = defaultdict(Usage)
        self._lock = threading.Lock()

    def usage(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{table: {operation: {calls, read_units, write_units}}}`` since start or reset."""
        answer: dict[str, dict[str, dict[str, float]]] = {}
        with self._lock:
            for (table, operation), usage in sorted(self._usage.items()):
                answer.setdefault(table, {})[operation] = {
                    "calls": usage.calls,
                    "read_units": usage.read_units,
                    "write_units": usage.write_units,
                }
        return answer

    def reset(self) -> None:
        with self._lock:
            self._usage.clear()

    def call(
        self,
        operation: str,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        moto: WsgiApp,
    ) -> list[bytes]:
        """Run one metered call through moto (the caller holds the moto lock)."""
        request = peek_json(environ)
        region = signing_region(environ)
        writes = _writes(operation, request, region)
        answer = _Answer()
        body = b"".join(moto(environ, answer))
        billed = answer.ok or (
            answer.status.startswith("400") and any(code in body for code in _BILLED_FAILURES)
        )
        charges: dict[str, Charge] = {}
        if billed:
            if operation in READ_OPERATIONS:
                charges = _read_charges(
                    operation, request, region=region, body=body, environ=environ, moto=moto
                )
            else:
                charges = _write_charges(writes, applied=answer.ok)
        self._record(operation, request, charges)
        wanted = request.get("ReturnConsumedCapacity")
        if answer.ok and wanted in ("TOTAL", "INDEXES") and charges:
            body = _with_consumed(operation, body, charges, indexes=wanted == "INDEXES")
        # The body may have changed: its length and DynamoDB's checksum header with it.
        headers = [(k, v) for k, v in answer.headers if k.lower() not in _RECOMPUTED]
        headers += [("Content-Length", str(len(body))), ("x-amz-crc32", str(zlib.crc32(body)))]
        start_response(answer.status, headers)
        return [body]

    def _record(
        self, operation: str, request: Mapping[str, Any], charges: dict[str, Charge]
    ) -> None:
        with self._lock:
            if not charges:  # refused before it read or wrote: a call, no units
                self._usage[(_table_named(request), operation)].calls += 1
            for table, charge in charges.items():
                usage = self._usage[(table, operation)]
                usage.calls += 1
                usage.read_units += charge.read
                usage.write_units += charge.write + sum(charge.indexes.values())


def _table_named(request: Mapping[str, Any]) -> str:
    name = request.get("TableName")
    return name if isinstance(name, str) else ""


def _writes(operation: str, request: Mapping[str, Any], region: str | None) -> list[_Write]:
    """The items a write call touches, each with what it holds now (before the call)."""
    touched: list[tuple[str, Mapping[str, Any], bool, bool]] = []  # table, member, put, tx
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        touched.append((_table_named(request), request, operation == "PutItem", False))
    elif operation == "BatchWriteItem":
        for name, asks in (request.get("RequestItems") or {}).items():
            for ask in asks or []:
                if "PutRequest" in ask:
                    touched.append((name, ask["PutRequest"], True, False))
                elif "DeleteRequest" in ask:
                    touched.append((name, ask["DeleteRequest"], False, False))
    elif operation == "TransactWriteItems":
        for entry in request.get("TransactItems") or []:
            for kind, member in entry.items():
                touched.append((member.get("TableName", ""), member, kind == "Put", True))
    writes = []
    tables = _TableLookup(region)
    for name, member, put, transactional in touched:
        table = tables.get(name) if isinstance(name, str) else None
        if table is None:
            continue
        key = key_of(table, member.get("Item") or {}) if put else dict(member.get("Key") or {})
        before = stored_item(table, key)
        writes.append(_Write(table, table.name, key, before, transactional))
    return writes


def _write_charges(writes: list[_Write], *, applied: bool) -> dict[str, Charge]:
    charges: dict[str, Charge] = {}
    for write in writes:
        after = stored_item(write.table, write.key) if applied else write.before
        size = max(item_size(write.before or {}), item_size(after or {}))
        charge = charges.setdefault(write.name, Charge())
        charge.write += write_units(size, transactional=write.transactional)
        if not applied:
            continue
        for name, keys, projection in global_indexes(write.table):
            units = index_write_units(write.before, after, keys, projection, write.key)
            if units:
                charge.indexes[name] = charge.indexes.get(name, 0.0) + units
    return charges


def _read_charges(
    operation: str,
    request: Mapping[str, Any],
    *,
    region: str | None,
    body: bytes,
    environ: dict[str, Any],
    moto: WsgiApp,
) -> dict[str, Charge]:
    tables = _TableLookup(region)

    def stored_size(name: str, key: Mapping[str, Any]) -> int:
        table = tables.get(name)
        item = None if table is None else stored_item(table, dict(key))
        return item_size(item or {})

    charges: dict[str, Charge] = {}
    if operation == "GetItem":
        name = _table_named(request)
        size = stored_size(name, request.get("Key") or {})
        charges[name] = Charge(
            read=read_units(size, consistent=bool(request.get("ConsistentRead")))
        )
    elif operation == "BatchGetItem":
        for name, ask in (request.get("RequestItems") or {}).items():
            consistent = bool(ask.get("ConsistentRead"))
            units = sum(
                read_units(stored_size(name, key), consistent=consistent)
                for key in ask.get("Keys") or []
            )
            charges[name] = Charge(read=units)
    elif operation == "TransactGetItems":
        for entry in request.get("TransactItems") or []:
            get = entry.get("Get") or {}
            name = get.get("TableName", "")
            size = stored_size(name, get.get("Key") or {})
            charge = charges.setdefault(name, Charge())
            charge.read += read_units(size, consistent=True, transactional=True)
    else:  # Query, Scan: every item the page read, rounded up once
        page = orjson.loads(body)
        if any(member in request for member in _NARROWING):
            page = _unnarrowed_page(request, environ, moto)
        consistent = bool(request.get("ConsistentRead"))
        units = page_read_units(page.get("Items") or [], consistent=consistent)
        charges[_table_named(request)] = Charge(read=units)
    return charges


def _unnarrowed_page(
    request: Mapping[str, Any], environ: dict[str, Any], moto: WsgiApp
) -> dict[str, Any]:
    """The same page without the filter and projection: what DynamoDB read (and bills)."""
    plain = {k: v for k, v in request.items() if k not in _NARROWING}
    plain.pop("ReturnConsumedCapacity", None)
    raw = orjson.dumps(plain)
    twin = dict(environ, **{"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))})
    twin.pop("wsgi.input_terminated", None)
    answer = _Answer()
    body = b"".join(moto(twin, answer))
    page = orjson.loads(body) if answer.ok else {}
    return page if isinstance(page, dict) else {}


def _with_consumed(
    operation: str, body: bytes, charges: dict[str, Charge], *, indexes: bool
) -> bytes:
    """The answer with DynamoDB's ``ConsumedCapacity``: one object, or a list per table for
    the batch and transaction calls."""
    answer = orjson.loads(body)
    consumed = [_consumed(name, charge, indexes=indexes) for name, charge in charges.items()]
    single = operation not in (
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    )
    answer["ConsumedCapacity"] = consumed[0] if single else consumed
    return orjson.dumps(answer)


def _consumed(name: str, charge: Charge, *, indexes: bool) -> dict[str, Any]:
    def units(read: float, write: float) -> dict[str, float]:
        parts = {"CapacityUnits": read + write}
        if read:
            parts["ReadCapacityUnits"] = read
        if write:
            parts["WriteCapacityUnits"] = write
        return parts

    index_units = sum(charge.indexes.values())
    consumed: dict[str, Any] = {"TableName": name, **units(charge.read, charge.write + index_units)}
    if indexes:
        consumed["Table"] = units(charge.read, charge.write)
        if charge.indexes:
            consumed["GlobalSecondaryIndexes"] = {
                index: units(0.0, write) for index, write in charge.indexes.items()
            }
    return consumed


class _TableLookup:
    """Tables by name for one call: a batch names its table once per item, and each lookup
    walks every table moto holds."""

    def __init__(self, region: str | None) -> None:
        self.region = region
        self._found: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._found:
            self._found[name] = find_table(name, self.region)
        return self._found[name]


class _Answer:
    """A ``start_response`` that keeps the status and headers for later."""

    def __init__(self) -> None:
        self.status = "500 Internal Server Error"
        self.headers: list[tuple[str, str]] = []

    @property
    def ok(self) -> bool:
        return self.status.startswith("200")

    def __call__(self, status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        self.status = status
        self.headers = list(headers)
        return lambda data: None
