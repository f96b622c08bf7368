"""A TCP proxy on 127.0.0.1 that a test can cut: ``blackhole()`` makes the other side silent
(bytes either way are dropped, connections stay open, so clients hang until their own
timeouts, as behind a partition), ``heal()`` closes what was cut and forwards again.

    with TcpProxy(upstream_port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        proxy.blackhole(); ...; proxy.heal()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from bridge.local.processes import free_port


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.cut = False
        self.dropped_bytes = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def blackhole(self) -> None:
        self.cut = True

    def heal(self) -> None:
        """Forward again; connections that were cut are closed (their requests are gone)."""

        def close_all() -> None:
            for writer in list(self._writers):
                writer.close()
            self._writers.clear()
            self.cut = False

        done = threading.Event()
        self._loop.call_soon_threadsafe(lambda: (close_all(), done.set()))
        done.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.cut:
                    self.dropped_bytes += len(data)
                    continue
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()
