"""Helpers for testing code that uses bridge: real local servers and in-memory fakes."""

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker, ManagedProcess, MotoServer, free_port

__all__ = ["KafkaBroker", "LocalEndpoint", "ManagedProcess", "MotoServer", "free_port"]
