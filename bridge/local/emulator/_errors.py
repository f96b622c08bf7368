"""The errors the DynamoDB Streams API answers with, as exceptions the core raises.

Each carries its wire name and HTTP status, so the HTTP layer can render the exact shape real
clients parse (``__type`` in the body, ``x-amzn-ErrorType`` in the headers) without a table of
its own.
"""

from __future__ import annotations

from typing import ClassVar

ERROR_TYPE_PREFIX = "com.amazonaws.dynamodb.v20120810#"


class StreamsError(Exception):
    """Base of every answer that is an error; ``code`` is the name clients see."""

    code: ClassVar[str] = "InternalServerError"
    default_status: ClassVar[int] = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or self.default_status

    @property
    def wire_type(self) -> str:
        return ERROR_TYPE_PREFIX + self.code


class ValidationError(StreamsError):
    code = "ValidationException"
    default_status = 400


class SerializationError(StreamsError):
    code = "SerializationException"
    default_status = 400


class UnknownOperationError(StreamsError):
    code = "UnknownOperationException"
    default_status = 400


class ResourceNotFoundError(StreamsError):
    code = "ResourceNotFoundException"
    default_status = 400


class ExpiredIteratorError(StreamsError):
    code = "ExpiredIteratorException"
    default_status = 400


class TrimmedDataAccessError(StreamsError):
    code = "TrimmedDataAccessException"
    default_status = 400


class LimitExceededError(StreamsError):
    """Throttling: the real service answers it when a shard is read too often."""

    code = "LimitExceededException"
    default_status = 400


class ProvisionedThroughputExceededError(StreamsError):
    """DynamoDB's throttling of a table's reads or writes (the lease table's, in tests)."""

    code = "ProvisionedThroughputExceededException"
    default_status = 400


class InternalServerError(StreamsError):
    """A server-side failure; status 500 or 503, both of which clients must retry."""

    code = "InternalServerError"
    default_status = 500
