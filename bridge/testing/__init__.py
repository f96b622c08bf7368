"""Helpers for testing code that uses bridge: real local servers and in-memory fakes."""

from bridge.local.processes import KafkaBroker, ManagedProcess, MotoServer, free_port

__all__ = ["KafkaBroker", "ManagedProcess", "MotoServer", "free_port"]
