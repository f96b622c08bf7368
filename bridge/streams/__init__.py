"""Reading DynamoDB Streams: the ``StreamReader`` seam, its network client and its errors."""

from bridge.streams.client import StaticCredentials, StreamsClient
from bridge.streams.errors import (
    AccessDeniedError,
    ExpiredIteratorError,
    FatalStreamError,
    InvalidRequestError,
    StreamError,
    StreamNotEnabledError,
    StreamNotFoundError,
    TransientStreamError,
    TrimmedDataError,
)
from bridge.streams.model import (
    IteratorKind,
    KeyAttribute,
    RecordsPage,
    Shard,
    ShardIterator,
    StreamDescription,
)
from bridge.streams.reader import StreamReader

__all__ = [
    "AccessDeniedError",
    "ExpiredIteratorError",
    "FatalStreamError",
    "InvalidRequestError",
    "IteratorKind",
    "KeyAttribute",
    "RecordsPage",
    "Shard",
    "ShardIterator",
    "StaticCredentials",
    "StreamDescription",
    "StreamError",
    "StreamNotEnabledError",
    "StreamNotFoundError",
    "StreamReader",
    "StreamsClient",
    "TransientStreamError",
    "TrimmedDataError",
]
