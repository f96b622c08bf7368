"""The WSGI application of ``bridge local``: moto for everything but Streams and control.

Routing is by request, cheapest test first: the control API by path, the Streams API by its
``X-Amz-Target`` prefix, and everything else (DynamoDB, S3, ...) to moto's own dispatcher,
DynamoDB's item calls through the table faults a test may have switched on.
DynamoDB requests run one at a time: moto is not thread-safe, and a stream must see writes in
the order they were applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from bridge.local.capture import TableWatcher
from bridge.local.clock import EndpointClock
from bridge.local.control import PREFIX as CONTROL_PREFIX
from bridge.local.control import ControlApi
from bridge.local.emulator import FaultInjector, StreamsEmulator
from bridge.local.streams_http import TARGET_PREFIX as STREAMS_PREFIX
from bridge.local.streams_http import StreamsHttpHandler, error_response
from bridge.local.table_faults import TableFaults

DYNAMODB_PREFIX = "DynamoDB_20120810."
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
        self._clock = clock
        self._table_faults = table_faults or TableFaults()
        self._streams = StreamsHttpHandler(emulator, faults, clock.now, self.watcher.sync)
        self.control = ControlApi(
            emulator, faults, clock, self.watcher.sync, table_faults=self._table_faults
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        target: str = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(STREAMS_PREFIX):
            return self._streams(environ, start_response)
        if not target.startswith(DYNAMODB_PREFIX):
            return self._moto(environ, start_response)
        operation = target[len(DYNAMODB_PREFIX) :]
        fault = self._table_faults.fault_for(operation, environ, self._clock.now())
        if fault is not None:
            return error_response(fault, start_response)
        with self._moto_lock:
            # Flask builds the whole response inside this call, so the table exists by now.
            response = self._moto(environ, start_response)
            if operation in TABLE_OPERATIONS:
                self.watcher.sync()
            return response
