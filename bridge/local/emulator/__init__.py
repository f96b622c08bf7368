"""The emulated DynamoDB Streams service: pure Python, no I/O, time passed in.

``bridge local`` puts it behind HTTP; tests can also drive it directly on a virtual clock.
"""

from bridge.local.emulator._emulator import ITERATOR_TYPES, StreamsEmulator
from bridge.local.emulator._errors import (
    ExpiredIteratorError,
    InternalServerError,
    LimitExceededError,
    ProvisionedThroughputExceededError,
    ResourceNotFoundError,
    SerializationError,
    StreamsError,
    TrimmedDataAccessError,
    UnknownOperationError,
    ValidationError,
)
from bridge.local.emulator._faults import FaultInjector, FaultSettings
from bridge.local.emulator._records import CapturedChange
from bridge.local.emulator._sequence import format_sequence, parse_sequence
from bridge.local.emulator._settings import StreamSettings
from bridge.local.emulator._stream import StreamIdentity, key_hash

__all__ = [
    "ITERATOR_TYPES",
    "CapturedChange",
    "ExpiredIteratorError",
    "FaultInjector",
    "FaultSettings",
    "InternalServerError",
    "LimitExceededError",
    "ProvisionedThroughputExceededError",
    "ResourceNotFoundError",
    "SerializationError",
    "StreamIdentity",
    "StreamSettings",
    "StreamsEmulator",
    "StreamsError",
    "TrimmedDataAccessError",
    "UnknownOperationError",
    "ValidationError",
    "format_sequence",
    "key_hash",
    "parse_sequence",
]
