"""Processors: where changes go. Built-ins (log, sqlite, kafka) and the API for your own."""

from bridge.processors.api import (
    Batch,
    Checkpointer,
    EndReason,
    LeaseLostError,
    PartialBatchError,
    PerShardFactory,
    Processor,
    ProcessorFactory,
    RetriableError,
    ShardContext,
    is_retriable,
)

__all__ = [
    "Batch",
    "Checkpointer",
    "EndReason",
    "LeaseLostError",
    "PartialBatchError",
    "PerShardFactory",
    "Processor",
    "ProcessorFactory",
    "RetriableError",
    "ShardContext",
    "is_retriable",
]
