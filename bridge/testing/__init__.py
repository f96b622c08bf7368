"""Helpers for testing code that uses bridge: real local servers and in-memory fakes."""

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker, ManagedProcess, MotoServer, free_port
from bridge.testing.memory_leases import MemoryLeaseStore
from bridge.testing.memory_stream import MemoryStream

__all__ = [
    "KafkaBroker",
    "LocalEndpoint",
    "ManagedProcess",
    "MemoryLeaseStore",
    "MemoryStream",
    "MotoServer",
    "free_port",
]
