"""Errors that more than one layer raises or catches, kept at the bottom so that every layer
can name them without importing a layer above it (the lease table, a processor and the worker
all speak of a lost lease; a processor and the CLI both speak of a worker that failed)."""

from __future__ import annotations


class LeaseLostError(Exception):
    """A checkpoint was refused because this worker no longer owns the shard's lease."""


class WorkerFailedError(Exception):
    """The worker stopped because of an error that retrying cannot fix."""
