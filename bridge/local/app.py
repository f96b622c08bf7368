"""The WSGI application of ``bridge local``: moto for everything but Streams and control.

Routing is by request, cheapest test first: the control API by path, the Streams API by its
``X-Amz-Target`` prefix, and everything else (DynamoDB, S3, ...) to moto's own dispatcher,
DynamoDB's item calls through the table faults a test may have switched on and then the
capacity meter (``bridge.local.capacity``), and the calls that set a StreamSpecification
through the checks DynamoDB makes and moto does not.
DynamoDB requests run one at a time: moto is not thread-safe, and a stream must see writes in
the order they were applied. ``POST /moto-api/reset`` runs alone too: moto forgets its tables,
then the endpoint forgets the streams, counters, clock, faults and capacity used that went
with them, so each test of a moto-style suite starts from the same endpoint whatever ran
before it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from bridge.local.capacity import METERED, CapacityMeter
from bridge.local.capture import TableWatcher
from bridge.local.clock import EndpointClock
from bridge.local.control import PREFIX as CONTROL_PREFIX
from bridge.local.control import ControlApi
from bridge.local.emulator import FaultInjector, StreamsEmulator, StreamsError
from bridge.local.moto_state import (
    find_table,
    forget_stream_label,
    restore_stream_label,
    stop_tracking_items,
    stream_enabled,
)
from bridge.local.stream_specification import (
    CHECKED_OPERATIONS,
    UPDATE_TABLE,
    TableStream,
    check_stream_specification,
)
from bridge.local.streams_http import TARGET_PREFIX as STREAMS_PREFIX
from bridge.local.streams_http import StreamsHttpHandler, error_response, signing_region
from bridge.local.table_faults import TableFaults
from bridge.local.wsgi import peek_json

DYNAMODB_PREFIX = "DynamoDB_20120810."
RESET_PATH = "/moto-api/reset"
# Operations after which a table may have gained or lost a stream.
TABLE_OPERATIONS = frozenset(
    {
        "CreateTable",
        "UpdateTable",
        "DeleteTable",
        "RestoreTableFromBackup",
        "RestoreTableToPointInTime",
        "ImportTable",
    }
)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = structlog.get_logger(__name__)


class LocalApp:
    def __init__(
        self,
        moto_app: WsgiApp,
        emulator: StreamsEmulator,
        faults: FaultInjector,
        clock: EndpointClock,
        table_faults: TableFaults | None = None,
    ) -> None:
        self.watcher = TableWatcher(emulator, clock.now)
        self._moto = moto_app
        self._moto_lock = threading.Lock()
        self._emulator = emulator
        self._faults = faults
        self._clock = clock
        self._table_faults = table_faults or TableFaults()
        self._streams = StreamsHttpHandler(emulator, faults, clock.now, self.watcher.sync)
        self.capacity = CapacityMeter()
        self.control = ControlApi(
            emulator,
            faults,
            clock,
            self.watcher.sync,
            table_faults=self._table_faults,
            capacity=self.capacity,
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        target: str = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(STREAMS_PREFIX):
            return self._streams(environ, start_response)
        if not target.startswith(DYNAMODB_PREFIX):
            if path.rstrip("/") == RESET_PATH and environ.get("REQUEST_METHOD") == "POST":
                return self._reset(environ, start_response)
            return self._moto(environ, start_response)
        operation = target[len(DYNAMODB_PREFIX) :]
        fault = self._table_faults.fault_for(operation, environ, self._clock.now())
        if fault is not None:
            return error_response(fault, start_response)
        with self._moto_lock:
            if operation in CHECKED_OPERATIONS:
                return self._stream_specified(operation, environ, start_response)
            if operation in METERED:
                return self.capacity.call(operation, environ, start_response, self._moto)
            # Flask builds the whole response inside this call, so the table exists by now.
            response = self._moto(environ, start_response)
            if operation in TABLE_OPERATIONS:
                self.watcher.sync()
            return response

    def reset(self) -> None:
        """The Streams side of a reset: back to the endpoint as it started, with its settings
        (shards, rotation, base fault rates) kept and sequence numbers still growing."""
        stop_tracking_items()  # moto's reset handed every model a fresh tracking list
        self.watcher.forget()
        self._emulator.reset()
        self._faults.reset()
        self._clock.reset()
        self.capacity.reset()
        self._table_faults = TableFaults(seed=self._faults.settings.seed)
        self.control.table_faults = self._table_faults
        log.info("endpoint reset: tables, streams, clock and faults")

    def _reset(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status = _StatusRecorder(start_response)
        with self._moto_lock:
            response = list(self._moto(environ, status))
            if status.ok:
                self.reset()
        return response

    def _stream_specified(
        self, operation: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """CreateTable or UpdateTable, after the checks of its StreamSpecification (under the
        moto lock, so the table they look at is the one moto then changes)."""
        request = peek_json(environ)
        table = None
        name = request.get("TableName")
        if operation == UPDATE_TABLE and "StreamSpecification" in request and isinstance(name, str):
            table = find_table(name, signing_region(environ))
        current = None if table is None else TableStream(table.name, stream_enabled(table))
        try:
            asked = check_stream_specification(operation, request, current)
        except StreamsError as error:
            return error_response(error, start_response)
        if table is None or asked is None or not asked.enabled:
            response = self._moto(environ, start_response)
        else:  # a stream switched on is always a new one, after an old one too
            label = forget_stream_label(table)
            status = _StatusRecorder(start_response)
            response = list(self._moto(environ, status))
            if not status.ok:
                restore_stream_label(table, label)
        self.watcher.sync()
        return response


class _StatusRecorder:
    """A ``start_response`` that remembers whether the answer was a success."""

    def __init__(self, start_response: Callable[..., Any]) -> None:
        self._start_response = start_response
        self.ok = False

    def __call__(self, status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        self.ok = status.startswith("200")
        return self._start_response(status, headers, *exc_info)
