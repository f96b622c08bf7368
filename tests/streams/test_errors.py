"""The one mapping from failures to what the consumer does about them (pure: no I/O)."""

from __future__ import annotations

import pickle

import aiohttp
import botocore.exceptions
import pytest

from bridge.streams.errors import (
    AccessDeniedError,
    ExpiredIteratorError,
    FatalStreamError,
    InvalidRequestError,
    StreamError,
    StreamNotFoundError,
    TransientStreamError,
    TrimmedDataError,
    classify,
    error_code_from_type,
    from_exception,
    from_response,
)

CONTEXT = "stream arn:aws:dynamodb:us-east-1:1:table/t/stream/x shard shardId-1"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("LimitExceededException", TransientStreamError),
        ("ThrottlingException", TransientStreamError),
        ("ProvisionedThroughputExceededException", TransientStreamError),
        ("InternalServerError", TransientStreamError),
        ("ServiceUnavailable", TransientStreamError),
        ("ExpiredIteratorException", ExpiredIteratorError),
        ("TrimmedDataAccessException", TrimmedDataError),
        ("ResourceNotFoundException", StreamNotFoundError),
        ("AccessDeniedException", AccessDeniedError),
        ("UnrecognizedClientException", AccessDeniedError),
        ("InvalidSignatureException", AccessDeniedError),
        ("ExpiredTokenException", AccessDeniedError),
        ("ValidationException", InvalidRequestError),
        ("SerializationException", InvalidRequestError),
    ],
)
def test_known_codes_map_to_their_kind_whatever_the_status(
    code: str, kind: type[StreamError]
) -> None:
    for status in (400, 500):
        assert type(classify(code, "m", status)) is kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, TransientStreamError),
        (502, TransientStreamError),
        (503, TransientStreamError),
        (429, TransientStreamError),
        (None, TransientStreamError),
        (403, AccessDeniedError),
        (401, AccessDeniedError),
        (404, StreamNotFoundError),
        (400, FatalStreamError),
        (413, FatalStreamError),
    ],
)
def test_unknown_codes_fall_back_on_the_status(status: int | None, kind: type[StreamError]) -> None:
    assert type(classify("SomethingNew", "m", status)) is kind


def test_the_families_answer_what_to_do() -> None:
    assert issubclass(StreamNotFoundError, FatalStreamError)
    assert issubclass(AccessDeniedError, FatalStreamError)
    assert issubclass(InvalidRequestError, FatalStreamError)
    assert TransientStreamError("x").retryable
    assert not any(
        kind("x").retryable
        for kind in (ExpiredIteratorError, TrimmedDataError, FatalStreamError, StreamNotFoundError)
    )
    for kind in (ExpiredIteratorError, TrimmedDataError, TransientStreamError):
        assert not issubclass(kind, FatalStreamError)


def test_an_error_carries_code_message_status_and_names_what_was_read() -> None:
    error = classify("ExpiredIteratorException", "Iterator expired", 400, context=CONTEXT)

    assert (error.code, error.message, error.status, error.context) == (
        "ExpiredIteratorException",
        "Iterator expired",
        400,
        CONTEXT,
    )
    assert str(error) == f"{CONTEXT}: ExpiredIteratorException (HTTP 400): Iterator expired"


def test_errors_pickle_with_their_fields() -> None:
    error = classify("LimitExceededException", "slow down", 400, context=CONTEXT)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is TransientStreamError
    assert (copy.code, copy.message, copy.status, copy.context) == (
        error.code,
        error.message,
        error.status,
        error.context,
    )


@pytest.mark.parametrize(
    ("error_type", "code"),
    [
        ("com.amazonaws.dynamodb.v20120810#ExpiredIteratorException", "ExpiredIteratorException"),
        ("ExpiredIteratorException", "ExpiredIteratorException"),
        ("ThrottlingException:http://internal.amazon.com/coral/", "ThrottlingException"),
    ],
)
def test_error_types_reduce_to_the_code(error_type: str, code: str) -> None:
    assert error_code_from_type(error_type) == code


def test_a_json_error_body_is_read_for_code_and_message() -> None:
    body = (
        b'{"__type":"com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException","message":"gone"}'
    )

    error = from_response(400, body, context=CONTEXT)

    assert type(error) is TrimmedDataError
    assert (error.code, error.message, error.status) == ("TrimmedDataAccessException", "gone", 400)
    assert error.context == CONTEXT


def test_a_capitalised_message_and_the_error_type_header_are_understood() -> None:
    error = from_response(
        400, {"Message": "Rate exceeded"}, error_type_header="LimitExceededException"
    )

    assert type(error) is TransientStreamError
    assert (error.code, error.message) == ("LimitExceededException", "Rate exceeded")


def test_a_proxy_html_page_is_judged_by_its_status() -> None:
    error = from_response(502, b"<html><body>Bad Gateway</body></html>")

    assert type(error) is TransientStreamError
    assert error.code == "HTTP502"
    assert "Bad Gateway" in error.message


def client_error(code: str, status: int, message: str = "boom") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetRecords",
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ExpiredIteratorException", 400),
        ("TrimmedDataAccessException", 400),
        ("LimitExceededException", 400),
        ("ResourceNotFoundException", 400),
        ("AccessDeniedException", 400),
        ("ValidationException", 400),
        ("InternalServerError", 500),
        ("SomethingNew", 503),
        ("SomethingNew", 400),
    ],
)
def test_botocore_and_the_fast_path_agree(code: str, status: int) -> None:
    body = f'{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"boom"}}'.encode()

    via_botocore = from_exception(client_error(code, status), context=CONTEXT)
    via_fast_path = from_response(status, body, context=CONTEXT)

    assert type(via_botocore) is type(via_fast_path)
    assert (via_botocore.code, via_botocore.status, via_botocore.message) == (
        via_fast_path.code,
        via_fast_path.status,
        via_fast_path.message,
    )


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (aiohttp.ServerDisconnectedError(), "ConnectionError"),
        (aiohttp.ClientConnectionResetError("reset"), "ConnectionError"),
        (aiohttp.ClientPayloadError("cut short"), "ConnectionError"),
        (ConnectionRefusedError(111, "Connection refused"), "ConnectionError"),
        (ConnectionResetError(104, "Connection reset by peer"), "ConnectionError"),
        (TimeoutError(), "Timeout"),
        (aiohttp.ServerTimeoutError("read"), "Timeout"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), "ConnectionError"),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), "Timeout"),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"), "Timeout"),
        (botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"), "ConnectionError"),
    ],
)
def test_failures_without_an_answer_are_transient(exc: BaseException, code: str) -> None:
    error = from_exception(exc, context=CONTEXT)

    assert type(error) is TransientStreamError
    assert (error.code, error.status) == (code, None)
    assert str(error).startswith(CONTEXT)


def test_configuration_problems_are_fatal() -> None:
    no_credentials = from_exception(botocore.exceptions.NoCredentialsError())
    bad_parameter = from_exception(botocore.exceptions.ParamValidationError(report="bad"))
    bug = from_exception(ValueError("surprise"))

    assert type(no_credentials) is AccessDeniedError
    assert type(bad_parameter) is InvalidRequestError
    assert type(bug) is FatalStreamError and bug.code == "ValueError"


def test_a_stream_error_passes_through_unchanged() -> None:
    original = TrimmedDataError("x", code="TrimmedDataAccessException")

    assert from_exception(original) is original
