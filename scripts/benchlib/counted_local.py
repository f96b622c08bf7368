"""``bridge local`` whose every API call is counted by operation and table, for the cost runs.

Run as ``python -m benchlib.counted_local <bridge local options>``: the same command line as
``bridge local``, plus ``GET /_bench/counts`` answering ``{"OPERATION TABLE": calls}`` (the
table is taken from the stream ARN for DescribeStream and GetShardIterator, and is empty for
GetRecords, which names an opaque shard iterator instead). Counting happens in
the endpoint, not in the workers, so it sees every call bridge makes, whatever bridge's own
metrics say.
"""

from __future__ import annotations

import io
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import orjson

import bridge.local.server
from bridge.local.app import LocalApp

COUNTS_PATH = "/_bench/counts"


class CountingApp(LocalApp):
    """LocalApp that counts each request's ``X-Amz-Target`` operation and table first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with self._lock:
                body = orjson.dumps(dict(self.counts))
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        target: str = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            self._count(environ, target.rsplit(".", 1)[-1])
        return super().__call__(environ, start_response)

    def _count(self, environ: dict[str, Any], operation: str) -> None:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        tables = [""]
        try:
            request = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            request = {}
        if isinstance(request, dict):
            if isinstance(request.get("TableName"), str):
                tables = [request["TableName"]]
            elif isinstance(request.get("RequestItems"), dict):
                tables = list(request["RequestItems"])
            elif isinstance(request.get("StreamArn"), str):  # .../table/NAME/stream/LABEL
                tables = [request["StreamArn"].split(":table/", 1)[-1].split("/", 1)[0]]
            elif isinstance(request.get("TransactItems"), list):
                tables = [
                    next(iter(item.values())).get("TableName", "")
                    for item in request["TransactItems"]
                    if isinstance(item, dict) and item
                ]
        with self._lock:
            for table in tables:
                self.counts[f"{operation} {table}".strip()] += 1


def main() -> None:
    bridge.local.server.LocalApp = CountingApp  # type: ignore[misc]
    from bridge.cli import main as bridge_main

    sys.argv = ["bridge", "--log-format", "json", "local", *sys.argv[1:]]
    bridge_main()


if __name__ == "__main__":
    main()
