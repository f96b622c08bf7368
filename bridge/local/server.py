"""``bridge local`` inside this process: moto and the Streams emulator on a threaded server.

The command runs one of these until a signal; tests that must reach moto's backend directly
(writing faster than HTTP allows) run one in their own process.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Self

from bridge.local.app import LocalApp
from bridge.local.capture import TableWatcher
from bridge.local.clock import EndpointClock
from bridge.local.control import ControlApi
from bridge.local.emulator import FaultInjector, StreamsEmulator
from bridge.local.moto_state import stop_tracking_items
from bridge.local.settings import LocalSettings
from bridge.local.table_faults import TableFaults


class LocalServer:
    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()
        self.clock = EndpointClock()
        self.emulator = StreamsEmulator(self.settings.streams, seed=self.settings.faults.seed)
        self.faults = FaultInjector(self.settings.faults)
        self._table_faults = TableFaults(seed=self.settings.faults.seed)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._app: LocalApp | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.server_port)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def table_faults(self) -> TableFaults:
        """DynamoDB's faults as they are now: a reset replaces them with fresh ones."""
        return self._table_faults if self._app is None else self._app.control.table_faults

    @property
    def watcher(self) -> TableWatcher:
        return self._started_app().watcher

    @property
    def control(self) -> ControlApi:
        return self._started_app().control

    def start(self) -> Self:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class QuietRequestHandler(MotoRequestHandler):
            """No access log line per request: pollers would bury everything else."""

            def log_request(self, code: object = "-", size: object = "-") -> None:
                pass

        stop_tracking_items()
        moto_app = DomainDispatcherApplication(create_backend_app)
        self._app = LocalApp(moto_app, self.emulator, self.faults, self.clock, self._table_faults)
        self._server = make_server(
            self.settings.host,
            self.settings.port,
            self._app,
            threaded=True,
            request_handler=QuietRequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bridge-local-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _started_app(self) -> LocalApp:
        if self._app is None:
            raise RuntimeError("the server is not started")
        return self._app

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
