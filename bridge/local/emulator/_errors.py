"""The errors the DynamoDB Streams API answers with, as exceptions the core raises.

Each carries its wire name and HTTP status, so the HTTP layer can render the exact shape real
clients parse (``__type`` in the body, ``x-amzn-ErrorType`` in the headers) without a table of
its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

ERROR_TYPE_PREFIX = "com.amazonaws.dynamodb.v20120810#"


class StreamsError(Exception):
    """Base of every answer that is an error; ``code`` is the name clients see."""

    code: ClassVar[str] = "InternalServerError"
    default_status: ClassVar[int] = 500

    def __init_subclass__(cls, *, code: str, status: int = 400, **kwargs: Any) -> None:
        """Each error states its wire name and status where it is declared. The service
        answers 400 for whatever the caller can fix or wait out (throttling included), 5xx
        only for its own failures."""
        super().__init_subclass__(**kwargs)
        cls.code = code
        cls.default_status = status

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or self.default_status

    @property
    def wire_type(self) -> str:
        return ERROR_TYPE_PREFIX + self.code


class ValidationError(StreamsError, code="ValidationException"):
    """A parameter is missing or malformed, or an iterator or sequence number is not one this
    endpoint issued."""


class SerializationError(StreamsError, code="SerializationException"):
    """The request body is not a JSON object."""


class UnknownOperationError(StreamsError, code="UnknownOperationException"):
    """``X-Amz-Target`` names no operation of the Streams API."""


class ResourceNotFoundError(StreamsError, code="ResourceNotFoundException"):
    """No such stream or shard (a shard that aged out is gone too)."""


class ExpiredIteratorError(StreamsError, code="ExpiredIteratorException"):
    """A shard iterator older than its time to live (AWS: 15 minutes)."""


class TrimmedDataAccessError(StreamsError, code="TrimmedDataAccessException"):
    """A position that retention has already deleted."""


class LimitExceededError(StreamsError, code="LimitExceededException"):
    """Throttling: the real service answers it when a shard is read too often."""


class ProvisionedThroughputExceededError(
    StreamsError, code="ProvisionedThroughputExceededException"
):
    """DynamoDB's throttling of a table's reads or writes (the lease table's, in tests)."""


class InternalServerError(StreamsError, code="InternalServerError", status=500):
    """A server-side failure; status 500 or 503, both of which clients must retry."""
