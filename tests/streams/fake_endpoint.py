"""A scriptable Streams endpoint on a loopback port, for what moto cannot do on demand.

Each test queues the answers it wants (status, body, headers) per API target; every request is
kept with its headers and body so a test can check what went over the wire. Also: a port
that accepts connections and closes them unanswered, and one that never answers.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, *, crc32: bool = True) -> Answer:
        body = orjson.dumps(data)
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        if crc32:
            headers["x-amz-crc32"] = str(zlib.crc32(body))
        return cls(status, body, headers)

    @classmethod
    def error(cls, code: str, message: str = "", status: int = 400) -> Answer:
        data = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
        return cls.json(data, status)


@dataclass
class Seen:
    target: str
    headers: dict[str, str]
    body: bytes
    host: str


class FakeStreamsEndpoint:
    def __init__(self) -> None:
        self.answers: dict[str, deque[Answer]] = defaultdict(deque)
        self.requests: list[Seen] = []
        self.url = ""

    def answer(self, operation: str, *answers: Answer) -> None:
        self.answers[f"DynamoDBStreams_20120810.{operation}"].extend(answers)

    async def _handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        body = await request.read()
        self.requests.append(Seen(target, dict(request.headers), body, request.host))
        queue = self.answers.get(target)
        if not queue:
            return web.Response(status=500, text=f"no answer queued for {target}")
        answer = queue.popleft()
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


@asynccontextmanager
async def fake_endpoint() -> AsyncIterator[FakeStreamsEndpoint]:
    endpoint = FakeStreamsEndpoint()
    app = web.Application()
    app.router.add_post("/", endpoint._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    endpoint.url = f"http://127.0.0.1:{port}"
    try:
        yield endpoint
    finally:
        await runner.cleanup()


@dataclass
class RawServer:
    url: str
    connections: int = 0


@asynccontextmanager
async def hanging_up_server(
    answer_from: int | None = None, answer: bytes = b""
) -> AsyncIterator[RawServer]:
    """Accepts connections and closes each as soon as the request arrived, unanswered; from
    the ``answer_from``-th connection on (1-based) it sends ``answer`` (raw HTTP) instead."""
    server_state = RawServer("")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_state.connections += 1
        number = server_state.connections
        await _read_request(reader)
        if answer_from is not None and number >= answer_from:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_state.url = f"http://127.0.0.1:{port}"
    try:
        yield server_state
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections, reads the request, never answers."""
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await release.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)


def http_response(data: Any) -> bytes:
    body = orjson.dumps(data)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
