"""Apply changes to the SQLite replica: data and checkpoint in one transaction per batch.

Because the checkpoint commits with the data, the replica and its position can never
disagree after a crash, and ``start`` hands that position to the runtime, where it wins over
the lease table's: the replica is exactly-once in effect. All writes go through one thread
(SQLite has one writer anyway), so shards of one worker never contend for the lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aioboto3
import orjson
import structlog
from pydantic import ValidationError

from bridge.aws import client_kwargs
from bridge.config import SourceConfig
from bridge.core.positions import SHARD_END
from bridge.item_json import EXACT
from bridge.processors.api import Batch, EndReason, Processor, ProcessorFactory, ShardContext
from bridge.processors.sqlite.bootstrap import (
    BootstrapError,
    BootstrapSettings,
    BootstrapState,
    TableScanner,
    read_state,
    replica_table,
)
from bridge.processors.sqlite.readiness import ReadinessTracker
from bridge.processors.sqlite.schema import (
    BOOKKEEPING,
    CHECKPOINT,
    SCHEMA_VERSION,
    STATUS,
    ReplicaTable,
)
from bridge.processors.sqlite.snapshots import SqliteSnapshots, check_parents_read
from bridge.records import ChangeRecord
from bridge.snapshots import SnapshotsConfig, StreamManifest

log = structlog.get_logger("bridge.processor.sqlite")

T = TypeVar("T")


class ReplicaSchemaError(Exception):
    """The stream's records cannot be replicated as configured (no new images, keys changed)."""


class SqliteProcessorFactory(ProcessorFactory):
    """Options: ``path`` (the file), ``table`` (the replica table's name; default the source
    table's), ``key_order`` (primary-key column order; default as the stream lists the
    keys), ``journal_mode`` (``wal``), ``synchronous`` (``normal``; ``full`` to survive power
    loss, not just a crash), ``ready_lag`` and ``stall_after`` in seconds, ``snapshots``
    (the same section as ``bridge replica``'s: docs/sqlite.md)."""

    def __init__(
        self,
        path: str,
        table: str,
        *,
        key_order: Sequence[str] | None = None,
        journal_mode: str = "wal",
        synchronous: str = "normal",
        ready_lag: float = 2.0,
        stall_after: float = 30.0,
        status_interval: float = 1.0,
        bootstrap_segments: int = 4,
        bootstrap_margin: float = 60.0,
        retention: float = 24 * 3600.0,
        start: str = "trim_horizon",
        source: SourceConfig | None = None,
        app: str | None = None,
        snapshots: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.table_name = table
        self.key_order = list(key_order) if key_order else None
        self.journal_mode = journal_mode
        self.synchronous = synchronous
        self.status_interval = status_interval
        self.readiness = ReadinessTracker(ready_lag=ready_lag, stall_after=stall_after)
        self.table: ReplicaTable | None = None
        self.start = start
        self.source = source
        self.bootstrap = BootstrapSettings(
            segments=bootstrap_segments, margin=bootstrap_margin, retention=retention
        )
        self.cutoff_ms: int | None = None
        """Changes older than this are in the bootstrap scan already and are skipped."""
        self.stream_arn: str | None = None
        """The stream the shards are read from (known once the first shard started)."""
        self.snapshots = _snapshots(
            snapshots,
            app=app,
            path=self.path,
            source=source,
            replica_table=table,
            retention=retention,
            start=start,
        )
        self.restored: StreamManifest | None = None
        """The snapshot this replica was restored from at this start, if any."""
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        if self.snapshots is not None and self.snapshots.restore_wanted():
            self.restored = await self.snapshots.cold_start()
        await self._call(self._open_db)
        self._status_task = asyncio.create_task(self._publish_status(), name="sqlite-status")
        log.info("replica open", path=str(self.path), table=self.table_name)
        state = await self._call(self._bootstrap_state)
        if state is None and self.restored is None and await self._wants_bootstrap():
            state = await self._run_bootstrap()
        elif state is not None and not state.done:
            state = await self._run_bootstrap()  # resume the scan a crash interrupted
        if state is not None:
            self.cutoff_ms = state.cutoff_ms
        if self.snapshots is not None and self.snapshots.settings.interval.total_seconds() > 0:
            self._snapshot_task = asyncio.create_task(
                self.snapshots.run_every_interval(self.take_snapshot), name="sqlite-snapshots"
            )

    async def _wants_bootstrap(self) -> bool:
        if self.start == "bootstrap":
            return True
        return self.start == "auto" and not await self._call(self._has_checkpoints)

    async def _run_bootstrap(self) -> BootstrapState:
        if self.source is None:
            raise BootstrapError("bootstrap needs the source settings (run it through bridge)")
        self.readiness.phase = "bootstrapping"
        await self.publish_status()
        async with aioboto3.Session().client("dynamodb", **client_kwargs(self.source)) as client:
            try:
                described = await client.describe_table(TableName=self.source.table)
            except client.exceptions.ResourceNotFoundException:
                raise BootstrapError(
                    f"cannot bootstrap: table {self.source.table} does not exist"
                ) from None
            table = replica_table(described["Table"], self.table_name)
            scanner = TableScanner(
                client=client,
                source_table=self.source.table,
                table=table,
                call=self._call,
                db=self._connection,
                settings=self.bootstrap,
                estimated_items=described["Table"].get("ItemCount"),
            )
            state = await scanner.run()
        self.table = table
        self.readiness.phase = "streaming"
        return state

    def _connection(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    def _bootstrap_state(self) -> BootstrapState | None:
        return read_state(self._connection())

    def _has_checkpoints(self) -> bool:
        row = self._connection().execute("SELECT count(*) FROM _bridge_checkpoints").fetchone()
        return bool(row[0])

    async def close(self) -> None:
        for task in (self._snapshot_task, self._status_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.snapshots is not None:
            self.snapshots.close()
        if self._db is not None:
            await self._call(self._write_status, False, "stopped")
            await self._call(self._db.close)
            self._db = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def create(self, shard_id: str) -> Processor:
        return SqliteProcessor(self, shard_id)

    async def take_snapshot(self) -> StreamManifest | None:
        """Copy, upload and expire now (``snapshots`` needed); None while bootstrapping,
        before the first shard started, or when nothing was applied since the last one."""
        if self.snapshots is None:
            raise RuntimeError("take_snapshot needs processor.options.snapshots")
        if self.readiness.phase != "streaming" or self.stream_arn is None:
            return None
        checkpoints = await self._call(self._all_checkpoints)
        on_writer = None if self.journal_mode == "wal" else self._copy_on_writer
        return await self.snapshots.take(self.stream_arn, checkpoints, on_writer)

    async def check_parents(self, shard_id: str, parents: Iterable[str]) -> None:
        """After a restore: refuse to read a shard whose parent the lease table finished
        after the snapshot was taken (``LeasesAheadOfSnapshotError``)."""
        if self.restored is not None:
            stored = {parent: await self.checkpoint_of(parent) for parent in parents}
            check_parents_read(shard_id, stored, self.restored)

    async def _copy_on_writer(self, target: Path) -> None:
        await self._call(self._copy_into, target)

    async def shard_ended(self, shard_id: str) -> None:
        """Record that a shard was read to its end: a snapshot then knows it needs nothing
        more from it, even once the shard has left the stream."""
        await self._call(self._write_checkpoint, shard_id, SHARD_END)

    # -- called by the shard processors ----------------------------------------------------

    async def checkpoint_of(self, shard_id: str) -> str | None:
        return await self._call(self._read_checkpoint, shard_id)

    async def apply(self, shard_id: str, records: Sequence[ChangeRecord]) -> None:
        last = records[-1]
        if self.cutoff_ms is not None:
            cutoff = self.cutoff_ms / 1000
            records = [r for r in records if r.approximate_creation_time.timestamp() >= cutoff]
        await self._call(self._apply, shard_id, records, last.sequence_number)
        self.readiness.batch(shard_id, last.approximate_creation_time.timestamp(), time.time())

    # -- the writer thread -----------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the sqlite processor is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _open_db(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA journal_mode={self.journal_mode}")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version not in (0, SCHEMA_VERSION):
            db.close()
            raise ReplicaSchemaError(
                f"{self.path} has layout version {version}, this bridge uses {SCHEMA_VERSION}"
            )
        db.executescript(BOOKKEEPING)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        row = db.execute(
            "SELECT key_columns FROM _bridge_tables WHERE name = ?", (self.table_name,)
        ).fetchone()
        if row is not None:
            self.table = ReplicaTable(self.table_name, [tuple(k) for k in orjson.loads(row[0])])
        self._db = db
        self._write_status(False, "starting")

    def _ensure_table(self, record: ChangeRecord) -> ReplicaTable:
        keys = record.raw["dynamodb"]["Keys"]
        if self.table is not None:
            if set(self.table.key_names) != set(keys):
                raise ReplicaSchemaError(
                    f"replica table {self.table_name} has key {self.table.key_names}, but the "
                    f"stream's records have {sorted(keys)}: use a new table or file"
                )
            return self.table
        order = self.key_order or list(keys)
        if set(order) != set(keys):
            raise ReplicaSchemaError(
                f"key_order {order} does not match the stream's key attributes {sorted(keys)}"
            )
        columns = [(name, next(iter(keys[name]))) for name in order]
        table = ReplicaTable(self.table_name, columns)
        assert self._db is not None
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(table.create())
            self._db.execute(
                "INSERT OR REPLACE INTO _bridge_tables (name, key_columns) VALUES (?, ?)",
                (self.table_name, orjson.dumps(columns).decode()),
            )
        self.table = table
        return table

    def _apply(self, shard_id: str, records: Sequence[ChangeRecord], checkpoint: str) -> None:
        db = self._connection()
        if not records:  # all older than the bootstrap's cut-off: only the position moves
            db.execute(CHECKPOINT, (shard_id, checkpoint, int(time.time() * 1000)))
            return
        table = self._ensure_table(records[0])
        upsert, delete = table.upsert(), table.delete()
        key_of = _key_reader(table)
        now_ms = int(time.time() * 1000)
        puts: list[tuple[Any, ...]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                change = record.raw["dynamodb"]
                keys = key_of(change["Keys"])
                if record.event == "REMOVE":
                    if puts:
                        db.executemany(upsert, puts)
                        puts = []
                    params = {f"k{i}": value for i, value in enumerate(keys)}
                    db.execute(delete, {**params, "seq": record.sequence_number})
                    continue
                image = change.get("NewImage")
                if image is None:
                    raise ReplicaSchemaError(
                        f"{record.event} record {record.sequence_number} has no new image: the "
                        "stream's view type must be NEW_IMAGE or NEW_AND_OLD_IMAGES"
                    )
                puts.append(
                    (*keys, EXACT.item_json(image).decode(), record.sequence_number, now_ms)
                )
            if puts:
                db.executemany(upsert, puts)
            db.execute(CHECKPOINT, (shard_id, checkpoint, now_ms))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _all_checkpoints(self) -> dict[str, str]:
        rows = self._connection().execute("SELECT shard_id, checkpoint FROM _bridge_checkpoints")
        return {str(shard): str(checkpoint) for shard, checkpoint in rows}

    def _write_checkpoint(self, shard_id: str, checkpoint: str) -> None:
        self._connection().execute(CHECKPOINT, (shard_id, checkpoint, int(time.time() * 1000)))

    def _copy_into(self, target: Path) -> None:
        self._connection().execute("VACUUM INTO ?", (str(target),))

    def _read_checkpoint(self, shard_id: str) -> str | None:
        assert self._db is not None
        row = self._db.execute(
            "SELECT checkpoint FROM _bridge_checkpoints WHERE shard_id = ?", (shard_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _write_status(self, ready: bool, reason: str) -> None:
        assert self._db is not None
        state = self.readiness
        self._db.execute(
            STATUS,
            (
                int(ready),
                state.lag_ms(),
                state.watermark_ms(),
                state.phase,
                reason,
                int(time.time() * 1000),
            ),
        )

    async def publish_status(self) -> tuple[bool, str]:
        """Write the current verdict to ``_bridge_status`` now; returns it."""
        ready, reason = self.readiness.verdict(time.monotonic())
        await self._call(self._write_status, ready, reason)
        return ready, reason

    async def _publish_status(self) -> None:
        """Keep ``_bridge_status`` current: readers judge staleness by its ``updated_ms``."""
        while True:
            await self.publish_status()
            await asyncio.sleep(self.status_interval)


def _key_reader(table: ReplicaTable) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """Key values straight from the wire form (``Keys``): text for S and N (the NUMERIC column
    stores an exact number), bytes for B. Cheaper than decoding the keys to Python values; the
    common shapes (one or two S/N keys) get a reader without a loop, as it runs per change."""
    columns = list(table.keys)
    if all(kind in ("S", "N") for _, kind in columns):
        if len(columns) == 1:
            [(name, kind)] = columns
            return lambda keys: (keys[name][kind],)
        if len(columns) == 2:
            (first, first_kind), (second, second_kind) = columns
            return lambda keys: (keys[first][first_kind], keys[second][second_kind])
    return lambda keys: tuple(_key_value(keys[name]) for name, _ in columns)


def _key_value(attribute: Mapping[str, Any]) -> Any:
    if "B" in attribute:
        binary = attribute["B"]
        return binary if isinstance(binary, bytes) else base64.b64decode(binary)
    return attribute.get("S", attribute.get("N"))


class SqliteProcessor(Processor):
    def __init__(self, factory: SqliteProcessorFactory, shard_id: str) -> None:
        self.factory = factory
        self.shard_id = shard_id

    async def start(self, context: ShardContext) -> str | None:
        self.context = context
        if context is not None:  # the stream a snapshot's checkpoints belong to
            self.factory.stream_arn = context.stream_arn
            await self.factory.check_parents(self.shard_id, context.parent_shard_ids)
        self.factory.readiness.started(self.shard_id, time.monotonic())
        own = await self.factory.checkpoint_of(self.shard_id)
        if own is not None or self.factory.start == "latest":
            return own
        # The replica owns its position: a new file reads every shard from its oldest record
        # (skipping what a bootstrap scan already holds), whatever the lease table says.
        return "TRIM_HORIZON"

    async def process(self, batch: Batch) -> None:
        await self.factory.apply(self.shard_id, batch.records)
        self.factory.readiness.active(self.shard_id, time.monotonic())

    async def at_tip(self) -> None:
        self.factory.readiness.caught_up(self.shard_id, time.monotonic())

    async def end(self, reason: EndReason) -> None:
        if reason is EndReason.SHARD_END:
            await self.factory.shard_ended(self.shard_id)
        self.factory.readiness.ended(
            self.shard_id, time.monotonic(), shard_end=reason is EndReason.SHARD_END
        )


def _snapshots(
    options: Mapping[str, Any] | None,
    *,
    app: str | None,
    path: Path,
    source: SourceConfig | None,
    replica_table: str,
    retention: float,
    start: str,
) -> SqliteSnapshots | None:
    """``processor.options.snapshots`` checked now: a bad key fails the start (exit 2)."""
    if options is None:
        return None
    try:
        settings = SnapshotsConfig.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"snapshots.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise TypeError(problems) from None
    if app is None:
        raise TypeError("snapshots need the app's name (run it through bridge)")
    return SqliteSnapshots(
        settings,
        app=app,
        path=path,
        source=source,
        source_table=source.table if source is not None else replica_table,
        replica_table=replica_table,
        retention=retention,
        start=start,
    )
