"""The replica file's one connection, opened in this bridge's layout, and the one thread that
runs every statement on it.

SQLite has one writer at a time anyway; funnelling the shards' batches, the bootstrap scan's
pages, checkpoints and status rows through a single thread means they never contend for the
file's lock (no ``database is locked`` under load) and the event loop never blocks on disk.
Opening the file is where the layout is checked: a file of the previous layout is migrated
(``layout.py``), one of another version refused rather than written into.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bridge.processors.sqlite.layout import PREVIOUS_VERSION, migrate
from bridge.processors.sqlite.schema import BOOKKEEPING, SCHEMA_VERSION, ReplicaSchemaError

T = TypeVar("T")


class ReplicaWriter:
    """Runs functions on the writer thread (``call``); those functions use ``connection``."""

    def __init__(self, path: Path, *, journal_mode: str, synchronous: str) -> None:
        self.path = path
        self.journal_mode = journal_mode
        self.synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the writer thread (the file is opened on it, by ``open_file``)."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer thread."""
        if self._executor is None:
            raise RuntimeError("the sqlite processor is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def connection(self) -> sqlite3.Connection:
        """The connection, for code running on the writer thread."""
        assert self._db is not None, "the replica file is not open"
        return self._db

    # -- on the writer thread --------------------------------------------------------------

    def open_file(self) -> sqlite3.Connection:
        """Open (or create) the file with the configured journal and sync modes, migrate the
        previous layout, refuse one this bridge does not know, and create the bookkeeping
        tables."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA journal_mode={self.journal_mode}")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version not in (0, PREVIOUS_VERSION, SCHEMA_VERSION):
            db.close()
            raise ReplicaSchemaError(
                f"{self.path} has layout version {version}, this bridge uses {SCHEMA_VERSION}"
            )
        db.executescript(BOOKKEEPING)
        if version == PREVIOUS_VERSION:
            try:
                migrate(db, self.path, SCHEMA_VERSION)
            except BaseException:
                db.close()
                raise
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db = db
        return db

    def copy_into(self, target: Path) -> None:
        """A consistent copy of the file at ``target`` (``VACUUM INTO``), made by the writer
        itself: without WAL a reader's copy would block it anyway."""
        self.connection().execute("VACUUM INTO ?", (str(target),))

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the file on the writer thread, then stop the thread."""
        if self._db is not None:
            await self.call(self._db.close)
            self._db = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
