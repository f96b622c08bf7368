"""``bridge local`` as a child process, for tests and scripts, with its control API at hand.

Running it in its own process (rather than a thread) means a test's clients meet it exactly
as they would meet AWS: over HTTP, with the endpoint's own scheduling and GIL.

    with LocalEndpoint(shards=4, rotate_records=500) as local:
        ddb = boto3.client("dynamodb", endpoint_url=local.endpoint_url)
        ...
        local.rotate()
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bridge.config import format_duration
from bridge.local.processes import ManagedProcess

DurationLike = float | timedelta | str


def _duration(value: DurationLike) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, timedelta):
        return format_duration(value)
    return format_duration(timedelta(seconds=value))


class ControlApiError(RuntimeError):
    pass


class LocalEndpoint(ManagedProcess):
    """``bridge local`` on a free port; durations are seconds, timedeltas or ``"10s"``."""

    name = "bridge-local"

    def __init__(
        self,
        *,
        port: int | None = None,
        log_dir: Path | None = None,
        shards: int = 4,
        max_open_shards: int = 0,
        rotate_records: int = 0,
        rotate_seconds: DurationLike = "4h",
        retention: DurationLike = "24h",
        iterator_ttl: DurationLike = "15m",
        throttle_rate: float = 0.0,
        error_rate: float = 0.0,
        latency: DurationLike = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(port, log_dir)
        self.options = [
            "--shards", str(shards),
            "--max-open-shards", str(max_open_shards),
            "--rotate-records", str(rotate_records),
            "--rotate-seconds", _duration(rotate_seconds),
            "--retention", _duration(retention),
            "--iterator-ttl", _duration(iterator_ttl),
            "--throttle-rate", str(throttle_rate),
            "--error-rate", str(error_rate),
            "--latency", _duration(latency),
        ]  # fmt: skip
        if seed is not None:
            self.options += ["--seed", str(seed)]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        return [
            sys.executable, "-m", "bridge", "--log-format", "json",
            "local", "--port", str(self.port), *self.options,
        ]  # fmt: skip

    # -- the control API --------------------------------------------------------------------

    def rotate(self, table: str | None = None) -> dict[str, Any]:
        """Close every open shard (of ``table``, or of all tables); children open at once."""
        body: dict[str, object] = {} if table is None else {"table": table}
        return self._call("POST", "rotate", body)

    def advance_clock(self, by: DurationLike) -> dict[str, Any]:
        """Move the endpoint's clock forward: iterators age, records near retention, etc."""
        return self._call("POST", "clock", {"advance": _duration(by)})

    def trim(self, advance: DurationLike | None = None) -> dict[str, Any]:
        """Apply retention now, after advancing the clock by ``advance`` if given."""
        body: dict[str, object] = {} if advance is None else {"advance": _duration(advance)}
        return self._call("POST", "trim", body)

    def throttle(
        self,
        count: int = 0,
        *,
        rate: float = 1.0,
        seconds: DurationLike | None = None,
        kind: str = "throttle",
        tables: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Fail the next ``count`` GetRecords/DescribeStream calls, or ``rate`` of them for
        ``seconds``; ``kind`` is ``throttle`` (LimitExceededException) or ``error`` (5xx).
        With ``tables``, DynamoDB's item calls on those tables fail instead (throttling is
        ProvisionedThroughputExceededException); ``tables=[]`` means every table."""
        body: dict[str, object] = {"count": count, "rate": rate, "kind": kind}
        if tables is not None:
            body.update(api="dynamodb", tables=list(tables))
        if seconds is not None:
            body["seconds"] = _duration(seconds)
        return self._call("POST", "throttle", body)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats", None)

    def append(
        self, table: str, records: int, *, size: int = 100, start: int = 0
    ) -> dict[str, Any]:
        """Synthetic INSERTs of ``size``-byte payloads straight onto the table's stream."""
        body: dict[str, object] = {"table": table, "records": records, "size": size, "start": start}
        return self._call("POST", "append", body)

    def capacity(self) -> dict[str, Any]:
        """DynamoDB read and write units used so far, as DynamoDB bills them:
        ``{table: {operation: {"calls", "read_units", "write_units"}}}``."""
        return self._call("GET", "capacity", None)

    def reset(self) -> dict[str, Any]:
        """``POST /moto-api/reset``, as moto's server mode sends it before each test: no
        tables, no streams, the clock and faults as at start."""
        return self._request("POST", "/moto-api/reset", None)

    def _call(self, method: str, name: str, body: dict[str, object] | None) -> dict[str, Any]:
        return self._request(method, f"/_bridge/{name}", body)

    def _request(self, method: str, path: str, body: dict[str, object] | None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.endpoint_url + path,
            data=None if body is None else orjson.dumps(body),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ControlApiError(f"{method} {path}: {exc.read().decode()}") from None
        if not isinstance(answer, dict):
            raise ControlApiError(f"{method} {path}: unexpected answer {answer!r}")
        return answer
