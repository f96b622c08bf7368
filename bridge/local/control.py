"""The control API (``/_bridge/...`` on the endpoint's port): make things happen now.

Tests use it to rotate shards, let time pass, trim, and throttle without waiting for the
real triggers. Bodies and answers are JSON; durations are seconds or strings like ``10s``.

    POST /_bridge/rotate    {"table": "orders"}            close all open shards (of a table)
    POST /_bridge/clock     {"advance": "16m"}             move the endpoint clock forward
    POST /_bridge/trim      {"advance": "25h"}             advance (optional), then trim now
    POST /_bridge/throttle  {"count": 3, "kind": "throttle"} or {"rate": 0.5, "seconds": "10s"}
                            Streams calls; with {"api": "dynamodb", "tables": ["app-leases"]}
                            DynamoDB item calls on those tables (all tables when none named)
    POST /_bridge/append    {"table": "orders", "records": 100000, "size": 200}
                            synthetic INSERTs straight onto the table's stream (not the table)
    GET  /_bridge/stats                                    records, shards, iterators, memory
    GET  /_bridge/capacity                                 DynamoDB read and write units used,
                            by table and operation, as DynamoDB bills them (bytes, not calls)

Undoing all of it is moto's own ``POST /moto-api/reset``, which resets the streams, the clock
and the faults along with moto's tables (``bridge.local.app``).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any

import orjson
from werkzeug.wsgi import get_input_stream

from bridge.config import parse_duration
from bridge.local.capacity import CapacityMeter
from bridge.local.clock import EndpointClock
from bridge.local.emulator import FaultInjector, StreamsEmulator
from bridge.local.moto_state import find_table, key_types
from bridge.local.synthetic import MAX_RECORDS, MAX_SIZE, synthetic_changes
from bridge.local.table_faults import TableFaults

PREFIX = "/_bridge/"

StartResponse = Callable[..., Any]


class ControlError(Exception):
    def __init__(self, message: str, status: str = "400 Bad Request") -> None:
        super().__init__(message)
        self.status = status


class ControlApi:
    def __init__(
        self,
        emulator: StreamsEmulator,
        faults: FaultInjector,
        clock: EndpointClock,
        before: Callable[[], None] = lambda: None,
        *,
        table_faults: TableFaults | None = None,
        capacity: CapacityMeter | None = None,
    ) -> None:
        self._emulator = emulator
        self._faults = faults
        self.table_faults = table_faults or TableFaults()
        """DynamoDB's faults; replaced by a fresh one when the endpoint is reset."""
        self._clock = clock
        self._before = before
        self.capacity = capacity or CapacityMeter()
        self._routes: dict[tuple[str, str], Callable[[Mapping[str, object]], object]] = {
            ("POST", "rotate"): self._rotate,
            ("POST", "clock"): self._advance,
            ("POST", "trim"): self._trim,
            ("POST", "throttle"): self._throttle,
            ("POST", "append"): self._append,
            ("GET", "stats"): lambda _: self.stats(),
            ("GET", "capacity"): lambda _: self.capacity.usage(),
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        name = environ.get("PATH_INFO", "")[len(PREFIX) :].strip("/")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            route = self._routes.get((method, name))
            if route is None:
                known = any(route_name == name for _, route_name in self._routes)
                raise ControlError(
                    f"{method} {PREFIX}{name} is not part of the control API",
                    "405 Method Not Allowed" if known else "404 Not Found",
                )
            self._before()
            answer, status = route(_json_body(environ)), "200 OK"
        except (ControlError, ValueError) as exc:
            answer = {"error": str(exc)}
            status = exc.status if isinstance(exc, ControlError) else "400 Bad Request"
        body = orjson.dumps(answer)
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def stats(self) -> dict[str, object]:
        now = self._clock.now()
        return {
            **self._emulator.stats(),
            "rss_bytes": _rss_bytes(),
            "clock": {"now": now, "offset_seconds": self._clock.offset},
            "faults": self._faults.describe(now),
            "table_faults": self.table_faults.describe(now),
            "settings": asdict(self._emulator.settings),
        }

    def _rotate(self, body: Mapping[str, object]) -> object:
        table = body.get("table")
        if table is not None and not isinstance(table, str):
            raise ControlError("table must be a string")
        return self._emulator.rotate(self._clock.now(), table)

    def _advance(self, body: Mapping[str, object]) -> object:
        seconds = _seconds(body.get("advance", 0))
        return {"now": self._clock.advance(seconds), "offset_seconds": self._clock.offset}

    def _trim(self, body: Mapping[str, object]) -> object:
        if "advance" in body:
            self._clock.advance(_seconds(body["advance"]))
        return {**self._emulator.trim(self._clock.now()), "now": self._clock.now()}

    def _throttle(self, body: Mapping[str, object]) -> object:
        count = body.get("count", 0)
        rate = body.get("rate", 1.0)
        kind = body.get("kind", "throttle")
        if isinstance(count, bool) or not isinstance(count, int):
            raise ControlError("count must be an integer")
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise ControlError("rate must be a number between 0 and 1")
        if not isinstance(kind, str):
            raise ControlError("kind must be 'throttle' or 'error'")
        api = body.get("api", "streams")
        tables = body.get("tables", [])
        if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
            raise ControlError("tables must be a list of table names")
        now = self._clock.now()
        seconds = _seconds(body.get("seconds", 0))
        if api == "streams":
            if tables:
                raise ControlError("tables apply to api 'dynamodb' only")
            self._faults.burst(now, kind=kind, count=count, rate=float(rate), seconds=seconds)
            return self._faults.describe(now)
        if api == "dynamodb":
            self.table_faults.burst(
                now, tables=tables, kind=kind, count=count, rate=float(rate), seconds=seconds
            )
            return self.table_faults.describe(now)
        raise ControlError("api must be 'streams' or 'dynamodb'")

    def _append(self, body: Mapping[str, object]) -> object:
        """Synthetic changes on a table's stream, as fast as the endpoint takes them."""
        table = body.get("table")
        if not isinstance(table, str):
            raise ControlError("table must be a string")
        count = _bounded_int(body, "records", None, MAX_RECORDS)
        size = _bounded_int(body, "size", 100, MAX_SIZE)
        start = _bounded_int(body, "start", 0, 2**62)
        stream = self._emulator.enabled_stream(table)
        found = find_table(table, None)
        if stream is None or found is None:
            raise ControlError(f"table {table} has no stream enabled", "404 Not Found")
        now = self._clock.now()
        changes = synthetic_changes(
            stream.key_schema, key_types(found), count=count, size=size, start=start
        )
        for change in changes:
            self._emulator.record_change(stream.arn, change, now)
        return {"appended": count, "stream": stream.arn}


def _bounded_int(body: Mapping[str, object], name: str, default: int | None, top: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ControlError(f"{name} must be an integer from 0 to {top}")
    return value


def _seconds(value: object) -> float:
    return parse_duration(value).total_seconds()


def _json_body(environ: dict[str, Any]) -> Mapping[str, object]:
    raw = get_input_stream(environ).read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ControlError("body must be JSON") from None
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    return body


def _rss_bytes() -> int:
    """Resident memory now (Linux), else the peak the kernel reports."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
