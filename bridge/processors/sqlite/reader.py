"""Reading a replica from an application: read-only, readiness first, items by key.

The writer republishes ``_bridge_status`` every second; a status older than ``stale_after``
means the writer is gone or stuck, and the replica is not ready whatever the row says.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bridge.processors.sqlite.keys import PLAIN_KEY
from bridge.processors.sqlite.schema import quote


class ReplicaNotReadyError(Exception):
    """The replica is not fit to read (bootstrapping, lagging, or its writer stopped)."""


@dataclass(frozen=True)
class ReplicaStatus:
    ready: bool
    reason: str
    lag_ms: float | None
    watermark_ms: int | None
    phase: str
    age_s: float
    """Seconds since the writer last published this status."""


class Replica:
    def __init__(self, path: str | Path, *, table: str | None = None, stale_after: float = 10.0):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no replica at {self.path}")
        self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        self.stale_after = stale_after
        self._wanted = table
        self._resolved: tuple[str, list[tuple[str, str]]] | None = None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> ReplicaStatus:
        row = self.db.execute(
            "SELECT ready, reason, lag_ms, watermark_ms, phase, updated_ms FROM _bridge_status"
        ).fetchone()
        if row is None:
            return ReplicaStatus(False, "never started", None, None, "unknown", float("inf"))
        ready, reason, lag_ms, watermark_ms, phase, updated_ms = row
        age = max(0.0, time.time() - updated_ms / 1000)
        if ready and age > self.stale_after:
            ready, reason = False, f"writer silent for {age:.0f}s"
        return ReplicaStatus(bool(ready), str(reason), lag_ms, watermark_ms, str(phase), age)

    def ensure_ready(self) -> None:
        status = self.status()
        if not status.ready:
            raise ReplicaNotReadyError(f"replica {self.path} is not ready: {status.reason}")

    def get(self, **key: Any) -> dict[str, Any] | None:
        """The item with this primary key, numbers as ``int``/``Decimal``, or None. A number
        key may be given as ``int``, ``Decimal`` or its text: it is looked up as the file
        stores it (``keys.py``), so every digit counts."""
        table, columns = self._table()
        names = [name for name, _ in columns]
        if set(key) != set(names):
            raise KeyError(f"the key of {table} is {names}, got {sorted(key)}")
        match = " AND ".join(f"{quote(name)} = ?" for name in names)
        values = [PLAIN_KEY[kind](key[name]) for name, kind in columns]
        row = self.db.execute(f"SELECT item FROM {quote(table)} WHERE {match}", values).fetchone()
        if row is None:
            return None
        item: dict[str, Any] = json.loads(row[0], parse_float=Decimal)
        return item

    def query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            return self.db.execute(sql, parameters).fetchall()
        finally:
            self.db.row_factory = None

    def _table(self) -> tuple[str, list[tuple[str, str]]]:
        """The replicated table; it exists once the first change was applied."""
        if self._resolved is not None:
            return self._resolved
        table = self._wanted
        known = dict(self.db.execute("SELECT name, key_columns FROM _bridge_tables").fetchall())
        if table is None:
            if len(known) != 1:
                raise LookupError(f"replica {self.path} holds tables {sorted(known)}: name one")
            table = next(iter(known))
        if table not in known:
            raise LookupError(f"replica {self.path} has no table {table!r} (has {sorted(known)})")
        self._resolved = table, [(str(n), str(k)) for n, k in json.loads(known[table])]
        return self._resolved
