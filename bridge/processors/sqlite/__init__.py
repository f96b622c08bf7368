"""``processor.kind: sqlite``: a local, queryable replica of the table in one SQLite file."""

from bridge.processors.sqlite.processor import SqliteProcessor, SqliteProcessorFactory
from bridge.processors.sqlite.reader import Replica, ReplicaNotReadyError, ReplicaStatus

__all__ = [
    "Replica",
    "ReplicaNotReadyError",
    "ReplicaStatus",
    "SqliteProcessor",
    "SqliteProcessorFactory",
]
