"""``processor.kind: sqlite``: a local, queryable replica of the table in one SQLite file."""

from bridge.processors.sqlite.processor import SqliteProcessor, SqliteProcessorFactory

__all__ = ["SqliteProcessor", "SqliteProcessorFactory"]
