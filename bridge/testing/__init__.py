"""Helpers for testing code that uses bridge: real local servers and in-memory fakes.

Imported lazily, so that a test using only an in-memory fake does not load moto.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.local.endpoint import LocalEndpoint
    from bridge.local.processes import KafkaBroker, ManagedProcess, MotoServer, free_port
    from bridge.testing.memory_leases import MemoryLeaseStore
    from bridge.testing.memory_stream import MemoryStream

_HOMES = {
    "LocalEndpoint": "bridge.local.endpoint",
    "KafkaBroker": "bridge.local.processes",
    "ManagedProcess": "bridge.local.processes",
    "MotoServer": "bridge.local.processes",
    "free_port": "bridge.local.processes",
    "MemoryLeaseStore": "bridge.testing.memory_leases",
    "MemoryStream": "bridge.testing.memory_stream",
}

__all__ = [
    "KafkaBroker",
    "LocalEndpoint",
    "ManagedProcess",
    "MemoryLeaseStore",
    "MemoryStream",
    "MotoServer",
    "free_port",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bridge.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
