"""Checkpoint first, scan second: fill a new replica from the table, then stream.

1. Record the cut-off (now, less a margin for clock skew and DynamoDB's one-second
   rounding of creation times) before reading a single item.
2. Scan the table in parallel segments. Each page commits together with its segment's
   position, so a crash resumes each segment where it stopped, not from zero.
3. Stream every shard from its oldest record, skipping changes older than the cut-off:
   the scan already holds their effect. Changes after the cut-off are applied over the
   scanned rows in stream order, so the replica converges on the table.

The stream keeps 24 hours; a scan that takes longer can never catch up, because changes
made early in the scan are trimmed before the stream is read. So the scan watches the
clock: it warns at half the retention and fails, clearly, before it runs out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from bridge.processors.sqlite.layout import register
from bridge.processors.sqlite.schema import ReplicaTable
from bridge.snapshots._progress import TransferProgress

log = structlog.get_logger("bridge.bootstrap")

PROGRESS = """
CREATE TABLE IF NOT EXISTS _bridge_bootstrap (
    segment INTEGER PRIMARY KEY,
    segments INTEGER NOT NULL,
    cutoff_ms INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    last_key TEXT,
    items INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0
)
"""


class BootstrapError(Exception):
    """The scan cannot produce a replica that streaming can complete."""


@dataclass(frozen=True)
class BootstrapSettings:
    segments: int = 4
    margin: float = 60.0
    """Seconds before the scan's start from which changes are replayed."""
    retention: float = 24 * 3600.0
    """The stream's retention; the scan must finish well inside it."""
    page_size: int | None = None


@dataclass(frozen=True)
class BootstrapState:
    cutoff_ms: int
    segments: int
    done: bool


Call = Callable[..., Awaitable[Any]]


def read_state(db: Any) -> BootstrapState | None:
    db.execute(PROGRESS)
    rows = db.execute("SELECT cutoff_ms, segments, done FROM _bridge_bootstrap").fetchall()
    if not rows:
        return None
    return BootstrapState(rows[0][0], rows[0][1], all(done for _, _, done in rows))


def replica_table(description: dict[str, Any], name: str) -> ReplicaTable:
    """Key columns in the table's own order (partition key first) with their types."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    ordered = sorted(description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return ReplicaTable(name, [(k["AttributeName"], types[k["AttributeName"]]) for k in ordered])


class TableScanner:
    """Runs steps 1 and 2 through ``call`` (the replica's writer thread) and a DynamoDB client."""

    def __init__(
        self,
        *,
        client: Any,
        source_table: str,
        table: ReplicaTable,
        call: Call,
        db: Callable[[], Any],
        settings: BootstrapSettings,
        estimated_items: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.source_table = source_table
        self.table = table
        self.call = call
        self.db = db
        self.settings = settings
        self.clock = clock
        self.estimated_items = estimated_items
        """DescribeTable's ItemCount (refreshed by DynamoDB about every six hours): the
        progress bar's total, an estimate."""
        self._warned = False
        self._progress: TransferProgress | None = None

    async def run(self) -> BootstrapState:
        state: BootstrapState = await self.call(self._begin)
        if state.done:
            return state
        log.info(
            "bootstrap scan",
            table=self.source_table,
            segments=state.segments,
            cutoff_ms=state.cutoff_ms,
        )
        self._progress = TransferProgress(
            "bootstrap scan", self.estimated_items, unit="items", table=self.source_table
        )
        self._progress.advance(await self.call(self._scanned))  # resumed: already in the file
        try:
            async with asyncio.TaskGroup() as group:
                for segment in range(state.segments):
                    group.create_task(self._scan_segment(segment, state))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # one segment's error says it all
        finally:
            self._progress.close()
        items = await self.call(self._finish)
        log.info("bootstrap scan done", table=self.source_table, items=items)
        return BootstrapState(state.cutoff_ms, state.segments, True)

    def _begin(self) -> BootstrapState:
        db = self.db()
        state = read_state(db)
        if state is not None:
            return state
        now_ms = int(self.clock() * 1000)
        cutoff = now_ms - int(self.settings.margin * 1000)
        db.execute("BEGIN IMMEDIATE")
        db.execute(self.table.create())
        db.executemany(
            "INSERT INTO _bridge_bootstrap (segment, segments, cutoff_ms, started_ms) "
            "VALUES (?, ?, ?, ?)",
            [(s, self.settings.segments, cutoff, now_ms) for s in range(self.settings.segments)],
        )
        register(db, self.table)
        db.execute("COMMIT")
        return BootstrapState(cutoff, self.settings.segments, False)

    async def _scan_segment(self, segment: int, state: BootstrapState) -> None:
        start_key = await self.call(self._position, segment)
        if start_key is False:
            return  # finished before a restart
        while True:
            self._check_retention(state.cutoff_ms)
            kwargs: dict[str, Any] = {
                "TableName": self.source_table,
                "Segment": segment,
                "TotalSegments": state.segments,
            }
            if self.settings.page_size:
                kwargs["Limit"] = self.settings.page_size
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            page = await self.client.scan(**kwargs)
            start_key = page.get("LastEvaluatedKey")
            items = page.get("Items", [])
            await self.call(self._write_page, segment, items, start_key)
            if self._progress is not None:
                self._progress.advance(len(items))
            if not start_key:
                return

    def _scanned(self) -> int:
        row = self.db().execute("SELECT coalesce(sum(items), 0) FROM _bridge_bootstrap").fetchone()
        return int(row[0])

    def _position(self, segment: int) -> Any:
        row = (
            self.db()
            .execute("SELECT last_key, done FROM _bridge_bootstrap WHERE segment = ?", (segment,))
            .fetchone()
        )
        if row[1]:
            return False
        return _load_key(row[0]) if row[0] else None

    def _write_page(self, segment: int, items: list[dict[str, Any]], next_key: Any) -> None:
        db = self.db()
        now_ms = int(self.clock() * 1000)
        db.execute("BEGIN IMMEDIATE")
        try:
            self.table.put_scanned(db, items, now_ms)
            db.execute(
                "UPDATE _bridge_bootstrap SET last_key = ?, items = items + ?, done = ? "
                "WHERE segment = ?",
                (
                    _dump_key(next_key) if next_key else None,
                    len(items),
                    int(not next_key),
                    segment,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _finish(self) -> int:
        row = self.db().execute("SELECT sum(items) FROM _bridge_bootstrap").fetchone()
        return int(row[0] or 0)

    def _check_retention(self, cutoff_ms: int) -> None:
        age = self.clock() - cutoff_ms / 1000
        retention = self.settings.retention
        if age > retention * 0.9:
            raise BootstrapError(
                f"the scan of {self.source_table} has run {age / 3600:.1f} h, close to the "
                f"stream's retention of {retention / 3600:.1f} h: changes made early in the "
                "scan will be trimmed before they can be applied. Use more segments "
                "(bootstrap_segments), or restore from a snapshot, and start again"
            )
        if age > retention * 0.5 and not self._warned:
            self._warned = True
            log.warning(
                "bootstrap scan is slow: half the stream's retention used",
                table=self.source_table,
                hours=round(age / 3600, 1),
            )


def _dump_key(key: dict[str, dict[str, Any]]) -> str:
    """A scan position as text; binary key values (bytes from botocore) as hex."""
    plain = {
        name: {kind: {"hex": v.hex()} if isinstance(v, bytes) else v for kind, v in attr.items()}
        for name, attr in key.items()
    }
    return orjson.dumps(plain).decode()


def _load_key(text: str) -> dict[str, dict[str, Any]]:
    plain: dict[str, dict[str, Any]] = orjson.loads(text)
    return {
        name: {
            kind: bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for kind, v in attr.items()
        }
        for name, attr in plain.items()
    }
