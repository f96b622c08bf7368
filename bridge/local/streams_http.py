"""The DynamoDB Streams wire protocol (JSON 1.0 over HTTP POST) in front of the emulator.

Errors leave in the shape botocore and the AWS CLI parse: HTTP 400 or 5xx, a JSON body with
``__type`` and ``message``, and the ``x-amzn-ErrorType`` header. Anything unexpected becomes
an InternalServerError answer, never a bare traceback page.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import structlog
from werkzeug.wsgi import get_input_stream

from bridge.local.emulator import (
    FaultInjector,
    InternalServerError,
    SerializationError,
    StreamsEmulator,
    StreamsError,
    UnknownOperationError,
)

TARGET_PREFIX = "DynamoDBStreams_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"

log = structlog.get_logger(__name__)

StartResponse = Callable[..., Any]
Operation = Callable[[Mapping[str, object], float, str | None], bytes]


class StreamsHttpHandler:
    def __init__(
        self,
        emulator: StreamsEmulator,
        faults: FaultInjector,
        clock: Callable[[], float],
        before: Callable[[], None] = lambda: None,
    ) -> None:
        self._faults = faults
        self._clock = clock
        self._before_describe = before
        self._operations: dict[str, Operation] = {
            "ListStreams": lambda r, now, region: orjson.dumps(
                emulator.list_streams(r, now, region)
            ),
            "DescribeStream": lambda r, now, _: orjson.dumps(emulator.describe_stream(r, now)),
            "GetShardIterator": lambda r, now, _: orjson.dumps(emulator.get_shard_iterator(r, now)),
            "GetRecords": lambda r, now, _: emulator.get_records(r, now),
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        operation = environ.get("HTTP_X_AMZ_TARGET", "")[len(TARGET_PREFIX) :]
        if self._faults.latency:
            time.sleep(self._faults.latency)  # emulated network and service time
        headers: list[tuple[str, str]] = []
        try:
            body = self._answer(operation, environ)
            status = "200 OK"
        except StreamsError as error:
            body, status, headers = error_parts(error)
        except Exception as exc:
            log.exception("streams request failed", operation=operation)
            body, status, headers = error_parts(InternalServerError(f"bridge local: {exc!r}"))
        return respond(status, headers, body, start_response)

    def _answer(self, operation: str, environ: dict[str, Any]) -> bytes:
        handler = self._operations.get(operation)
        if handler is None:
            raise UnknownOperationError(f"Unknown operation: {operation or '(none)'}")
        request = _json_request(environ)
        now = self._clock()
        fault = self._faults.fault_for(operation, now)
        if fault is not None:
            raise fault
        if operation in ("ListStreams", "DescribeStream"):
            self._before_describe()
        return handler(request, now, signing_region(environ))


def _json_request(environ: dict[str, Any]) -> Mapping[str, object]:
    raw = get_input_stream(environ).read()
    try:
        request = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise SerializationError("Request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise SerializationError("Request body must be a JSON object")
    return request


def signing_region(environ: dict[str, Any]) -> str | None:
    """The region of the SigV4 credential scope: ListStreams, like AWS, lists one region, and
    UpdateTable names a table of that region."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        return scope.split("/")[2] or None
    except IndexError:
        return None


def error_response(error: StreamsError, start_response: StartResponse) -> list[bytes]:
    """An error answered on its own, for the DynamoDB calls ``bridge local`` fails on purpose."""
    body, status, headers = error_parts(error)
    return respond(status, headers, body, start_response)


def respond(
    status: str, headers: list[tuple[str, str]], body: bytes, start_response: StartResponse
) -> list[bytes]:
    headers += [
        ("Content-Type", CONTENT_TYPE),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    start_response(status, headers)
    return [body]


def error_parts(error: StreamsError) -> tuple[bytes, str, list[tuple[str, str]]]:
    body = orjson.dumps({"__type": error.wire_type, "message": error.message})
    reason = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}
    status = f"{error.status} {reason.get(error.status, 'Error')}"
    return body, status, [("x-amzn-ErrorType", error.code)]
