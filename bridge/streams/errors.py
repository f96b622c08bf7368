"""What can go wrong talking to DynamoDB Streams, sorted by what the caller should do about it.

The shard consumer needs one decision per failure: retry with backoff (``TransientStreamError``),
get a new iterator (``ExpiredIteratorError``), count lost records and follow ``on_trimmed``
(``TrimmedDataError``), or stop with a clear message (``FatalStreamError``). The functions
here make that decision from an AWS error code and HTTP status, and they are the only place
that does, so the botocore path and the fast GetRecords path can never disagree.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
import botocore.exceptions
import orjson


class StreamError(Exception):
    """A failed Streams (or DynamoDB) call.

    ``code`` is the AWS error code (``ExpiredIteratorException``) or, for failures that never
    got an answer, a name of our own (``ConnectionError``, ``Timeout``); ``status`` is the HTTP
    status, None when there was no response; ``context`` names what was being read
    (``stream arn:... shard shardId-...``).
    """

    retryable = False

    def __init__(
        self, message: str, *, code: str = "", status: int | None = None, context: str = ""
    ) -> None:
        self.message = message
        self.code = code
        self.status = status
        self.context = context
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.context}: " if self.context else ""
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{where}{self.code or type(self).__name__} ({status}): {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields would be lost by Exception's default pickling (multiprocessing).
        return (_rebuild, (type(self), self.message, self.code, self.status, self.context))


def _rebuild(
    cls: type[StreamError], message: str, code: str, status: int | None, context: str
) -> StreamError:
    return cls(message, code=code, status=status, context=context)


class TransientStreamError(StreamError):
    """Throttling, a 5xx, a timeout or a broken connection: retry with backoff."""

    retryable = True


class ExpiredIteratorError(StreamError):
    """The shard iterator is older than 15 minutes: get a new one from the last checkpoint."""


class TrimmedDataError(StreamError):
    """The position is older than the stream's 24 h retention: those records are gone."""


class FatalStreamError(StreamError):
    """Retrying cannot help: stop the consumer and tell a human."""


class StreamNotFoundError(FatalStreamError):
    """The table, stream or shard does not exist (``ResourceNotFoundException``)."""


class StreamNotEnabledError(StreamNotFoundError):
    """The table exists but has no stream enabled."""


class AccessDeniedError(FatalStreamError):
    """The credentials are missing, wrong, expired or not allowed to do this."""


class InvalidRequestError(FatalStreamError):
    """The service rejected the request itself (a bug, or a bad configuration value)."""


_BY_CODE: dict[str, type[StreamError]] = {
    **dict.fromkeys(
        (
            "LimitExceededException",
            "ThrottlingException",
            "Throttling",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
            "InternalServerError",
            "InternalFailure",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "RequestTimeout",
            "RequestTimeoutException",
            # Our own codes, for failures without an AWS answer.
            "ConnectionError",
            "Timeout",
            "CorruptResponse",
        ),
        TransientStreamError,
    ),
    "ExpiredIteratorException": ExpiredIteratorError,
    "TrimmedDataAccessException": TrimmedDataError,
    "ResourceNotFoundException": StreamNotFoundError,
    **dict.fromkeys(
        (
            "AccessDeniedException",
            "AccessDenied",
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "IncompleteSignature",
            "MissingAuthenticationToken",
            "MissingAuthenticationTokenException",
            "InvalidClientTokenId",
            "ExpiredToken",
            "ExpiredTokenException",
            "NoCredentials",
            "NotAuthorized",
            "SignatureDoesNotMatch",
        ),
        AccessDeniedError,
    ),
    **dict.fromkeys(
        (
            "ValidationException",
            "SerializationException",
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "MissingParameter",
            "MissingAction",
            "UnknownOperationException",
            "InvalidAction",
            "InvalidRequest",
            "InvalidQueryParameter",
            "MalformedQueryString",
        ),
        InvalidRequestError,
    ),
}


def classify(
    code: str, message: str = "", status: int | None = None, *, context: str = ""
) -> StreamError:
    """The exception for an AWS error code and HTTP status; the single source of truth.

    An unknown code falls back on the status: 429 and 5xx are worth retrying (a proxy or load
    balancer in between answers with those too), 403 is access, 404 is a missing resource, and
    any other 4xx is a request the service will keep refusing.
    """
    kind = _BY_CODE.get(code)
    if kind is None:
        kind = _by_status(status)
    return kind(message or code or "no message", code=code, status=status, context=context)


def _by_status(status: int | None) -> type[StreamError]:
    if status is None or status == 429 or status >= 500:
        return TransientStreamError
    if status in (401, 403):
        return AccessDeniedError
    if status == 404:
        return StreamNotFoundError
    return FatalStreamError


def error_code_from_type(error_type: str) -> str:
    """``com.amazonaws.dynamodb.v20120810#ExpiredIteratorException`` -> the part after ``#``.

    ``x-amzn-ErrorType`` headers may also carry ``Code:http://...`` suffixes; drop those too.
    """
    return error_type.rsplit("#", 1)[-1].split(":", 1)[0].strip()


def from_response(
    status: int,
    body: bytes | Mapping[str, Any],
    *,
    error_type_header: str | None = None,
    context: str = "",
) -> StreamError:
    """The exception for an error response of the awsJson 1.0 protocol, from its raw parts.

    The body is ``{"__type": "...#Code", "message": "..."}``; when it is not JSON at all (a
    proxy's HTML page), the ``x-amzn-ErrorType`` header or else the status decides.
    """
    parsed: Mapping[str, Any] = {}
    if isinstance(body, Mapping):
        parsed = body
    elif body:
        try:
            loaded = orjson.loads(body)
        except orjson.JSONDecodeError:
            loaded = None
        if isinstance(loaded, Mapping):
            parsed = loaded
    error_type = str(parsed.get("__type") or parsed.get("code") or error_type_header or "")
    code = error_code_from_type(error_type) if error_type else ""
    message = str(parsed.get("message") or parsed.get("Message") or "")
    if not message and isinstance(body, bytes) and not parsed:
        message = body[:200].decode("utf-8", "replace").strip()
    if not code:
        code = f"HTTP{status}"
    return classify(code, message, status, context=context)


def from_exception(exc: BaseException, *, context: str = "") -> StreamError:
    """The exception for anything raised by botocore, aiobotocore or aiohttp during a call.

    Every failure that never produced an HTTP answer (refused, reset, timed out, DNS) is
    transient; a certificate the client refuses, a malformed URL or missing credentials are
    configuration problems and fatal.
    """
    if isinstance(exc, StreamError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        return _from_client_error(exc, context)
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return classify("NoCredentials", str(exc), None, context=context)
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return classify("InvalidParameterValue", str(exc), None, context=context)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
        return FatalStreamError(str(exc), code="InvalidCertificate", context=context)
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidRequestError(str(exc), code="InvalidURL", context=context)
    if isinstance(
        exc,
        TimeoutError
        | botocore.exceptions.ReadTimeoutError
        | botocore.exceptions.ConnectTimeoutError,
    ):
        return classify("Timeout", _describe(exc), None, context=context)
    if isinstance(
        exc,
        aiohttp.ClientConnectionError
        | aiohttp.ClientPayloadError
        | OSError
        | botocore.exceptions.HTTPClientError
        | botocore.exceptions.ConnectionError,
    ):
        return classify("ConnectionError", _describe(exc), None, context=context)
    return FatalStreamError(_describe(exc), code=type(exc).__name__, context=context)


def _from_client_error(exc: botocore.exceptions.ClientError, context: str) -> StreamError:
    response: Mapping[str, Any] = exc.response or {}
    error: Mapping[str, Any] = response.get("Error") or {}
    metadata: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    status = metadata.get("HTTPStatusCode")
    code = error_code_from_type(str(error.get("Code") or "")) or f"HTTP{status}"
    return classify(
        code,
        str(error.get("Message") or ""),
        int(status) if status is not None else None,
        context=context,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
