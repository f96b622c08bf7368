"""A table fault of an error code refuses every call on the tables it names, as a policy that
denies them or a credential check would: CreateTable and DescribeTable as well as item calls,
while throttling keeps to item calls and other tables are left alone."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from bridge.local.table_faults import TableFaults


def call(faults: TableFaults, operation: str, table: str, now: float = 0.0) -> str | None:
    body = orjson.dumps({"TableName": table})
    environ: dict[str, Any] = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    fault = faults.fault_for(operation, environ, now)
    assert environ["wsgi.input"].read() == body, "the body is put back for moto"
    return None if fault is None else f"{fault.code} {fault.status}"


def test_an_error_code_refuses_every_call_on_the_named_tables() -> None:
    faults = TableFaults()
    faults.burst(0.0, tables=["app-leases"], kind="AccessDeniedException", seconds=10)
    for operation in ("CreateTable", "DescribeTable", "PutItem", "Scan"):
        assert call(faults, operation, "app-leases") == "AccessDeniedException 400"
        assert call(faults, operation, "orders") is None
    assert call(faults, "CreateTable", "app-leases", now=11.0) is None, "the burst is over"
    described = faults.describe(0.0)
    assert described["injected"] == 4


def test_a_counted_refusal_ends_and_throttling_still_spares_describe_table() -> None:
    faults = TableFaults()
    faults.burst(0.0, kind="UnrecognizedClientException", count=2)
    assert call(faults, "DescribeTable", "any") == "UnrecognizedClientException 400"
    assert call(faults, "DescribeTable", "other") == "UnrecognizedClientException 400"
    assert call(faults, "DescribeTable", "any") is None
    faults.burst(0.0, kind="throttle", count=1)
    assert call(faults, "DescribeTable", "any") is None
    assert call(faults, "GetItem", "any") == "ProvisionedThroughputExceededException 400"


def test_a_kind_that_is_neither_a_fault_nor_an_error_code_is_refused() -> None:
    with pytest.raises(ValueError, match="error code such as AccessDeniedException"):
        TableFaults().burst(0.0, kind="access denied", count=1)
