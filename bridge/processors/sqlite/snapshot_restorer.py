"""Restoring the newest usable snapshot of the SQLite processor's replica: a cold start.

Manifests are tried newest first. Each is checked before its data is fetched: its format and
layout, that it holds this table, that it was taken from the table's current stream, that it
is younger than the stream's retention (a cheap first test), and that every checkpoint in it
can still be resumed from. For that the stream itself is asked (``GetShardIterator``
``AFTER_SEQUENCE_NUMBER``, where the worker would resume): a trimmed position means records
the snapshot never applied are gone. A shard that left the stream is fine only if the snapshot
read it to its end, and a shard the snapshot never read must still have its first record.
Then the data is downloaded, its size and sha256 checked, decompressed, opened as SQLite and
its checkpoints compared with the manifest's; only then is it renamed into place (atomic).
A rejected snapshot is logged with its reason and the next older one is tried. A snapshot of
the previous layout is restored as it is, and migrated when the writer opens it, as a file of
the node's own would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from bridge.core.positions import SHARD_END, is_sequence_number
from bridge.processors.sqlite.layout import PREVIOUS_VERSION
from bridge.processors.sqlite.schema import SCHEMA_VERSION, quote
from bridge.snapshots import (
    CorruptSnapshotError,
    ObjectStore,
    ObjectStoreError,
    Rejection,
    RestoreOutcome,
    SnapshotRejectedError,
    SnapshotsConfig,
    StreamManifest,
    app_prefix,
    fetch_object,
    install_file,
    newest_first,
    read_manifest,
)
from bridge.streams import InvalidRequestError, Shard, StreamError, StreamReader, TrimmedDataError

log = structlog.get_logger("bridge.processor.sqlite.snapshots")

PROBES_AT_ONCE = 8


class StreamUncheckableError(Exception):
    """The stream did not answer a check (not a trim): no snapshot can be judged now."""


@dataclass
class RestoreResult(RestoreOutcome):
    manifest: StreamManifest | None = None
    """The snapshot restored, or None."""


@dataclass(frozen=True)
class Probe:
    """One position to ask the stream about; ``stale`` says what a trim there means."""

    shard_id: str
    kind: Literal["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"]
    sequence_number: str
    stale: str


@dataclass(frozen=True)
class Wanted:
    """What a usable snapshot must match."""

    source_table: str
    replica_table: str
    stream_arn: str
    retention_s: float
    """The stream's retention: an older snapshot cannot be resumed from."""
    reads_new_shards_from_start: bool = True
    """False with ``source.start: latest``: a shard without a checkpoint starts at its end, so
    its trimmed beginning does not matter."""


def check_manifest(manifest: StreamManifest, wanted: Wanted, now_ms: int) -> None:
    """The checks that need no I/O; ``SnapshotRejectedError`` with the first that fails."""
    if manifest.schema_version not in (PREVIOUS_VERSION, SCHEMA_VERSION):
        raise SnapshotRejectedError(
            f"incompatible: replica layout version {manifest.schema_version}, this bridge "
            f"uses {SCHEMA_VERSION}"
        )
    source = manifest.source
    if source.table != wanted.source_table:
        raise SnapshotRejectedError(
            f"incompatible: taken from table {source.table}, not {wanted.source_table}"
        )
    if source.replica_table != wanted.replica_table:
        raise SnapshotRejectedError(
            f"incompatible: holds replica table {source.replica_table}, not {wanted.replica_table}"
        )
    if source.stream_arn != wanted.stream_arn:
        raise SnapshotRejectedError(
            f"stale: taken from stream {source.stream_arn}, the table's stream is now "
            f"{wanted.stream_arn}"
        )
    age_s = (now_ms - manifest.created_ms) / 1000
    if age_s > wanted.retention_s:
        raise SnapshotRejectedError(
            f"stale: taken {age_s / 3600:.1f} h ago, the stream keeps records only "
            f"{wanted.retention_s / 3600:.1f} h"
        )


def plan_probes(
    checkpoints: Mapping[str, str], shards: Mapping[str, Shard], *, new_from_start: bool
) -> list[Probe]:
    """The positions to ask the stream about; ``SnapshotRejectedError`` at once for a shard
    that left the stream before the snapshot read it to its end."""
    probes: list[Probe] = []
    for shard_id, checkpoint in sorted(checkpoints.items()):
        if checkpoint == SHARD_END:
            continue
        if shard_id not in shards:
            raise SnapshotRejectedError(
                f"stale: shard {shard_id} left the stream (trimmed) while the snapshot was at "
                f"{checkpoint}, not at its end: its later records are gone"
            )
        if is_sequence_number(checkpoint):
            probes.append(
                Probe(
                    shard_id,
                    "AFTER_SEQUENCE_NUMBER",
                    checkpoint,
                    f"stale: shard {shard_id}: the records after {checkpoint} were trimmed "
                    "from the stream",
                )
            )
    if new_from_start:
        for shard_id, shard in sorted(shards.items()):
            if shard_id not in checkpoints and shard.starting_sequence_number:
                probes.append(
                    Probe(
                        shard_id,
                        "AT_SEQUENCE_NUMBER",
                        shard.starting_sequence_number,
                        f"stale: shard {shard_id} is not in the snapshot and its first records "
                        "were trimmed from the stream",
                    )
                )
    return probes


class SnapshotRestorer:
    """Finds, checks and installs the newest usable snapshot."""

    def __init__(
        self,
        settings: SnapshotsConfig,
        store: ObjectStore,
        *,
        app: str,
        wanted: Wanted,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.app = app
        self.wanted = wanted
        self.clock = clock
        self.where = f"s3://{settings.bucket}/{app_prefix(settings.prefix, app)}"

    async def restore(self, target: Path, stream: StreamReader) -> RestoreResult:
        """Put the newest usable snapshot at ``target``; the result says which, and why every
        newer one was refused."""
        result = RestoreResult()
        try:
            listed = await asyncio.to_thread(
                self.store.list, app_prefix(self.settings.prefix, self.app)
            )
        except ObjectStoreError as exc:
            result.rejected.append(Rejection(self.where, f"cannot list snapshots: {exc}"))
            log.error("cannot list snapshots", where=self.where, error=str(exc))
            return result
        keys = newest_first(listed)
        log.info("snapshots found", where=self.where, count=len(keys))
        if not keys:
            return result
        try:
            description = await stream.describe_stream(self.wanted.stream_arn)
        except StreamError as exc:
            result.rejected.append(Rejection(self.where, f"cannot describe the stream: {exc}"))
            return result
        shards = {shard.shard_id: shard for shard in description.shards}
        for key in keys:
            try:
                manifest = await self._usable(key, stream, shards)
                await asyncio.to_thread(self._fetch, manifest, target)
            except (SnapshotRejectedError, CorruptSnapshotError, ObjectStoreError) as exc:
                reason = str(exc)
                if isinstance(exc, CorruptSnapshotError):
                    reason = f"corrupt: {reason}"
                log.warning("snapshot rejected", key=key, reason=reason)
                result.rejected.append(Rejection(key, reason))
                continue
            except StreamUncheckableError as exc:
                result.rejected.append(Rejection(key, str(exc)))
                log.error("cannot check snapshots against the stream", error=str(exc))
                return result
            result.manifest, result.key = manifest, key
            log.info(
                "snapshot restored",
                key=key,
                items=manifest.items,
                created=manifest.created,
                shards=len(manifest.checkpoints),
            )
            return result
        return result

    async def _usable(
        self, key: str, stream: StreamReader, shards: Mapping[str, Shard]
    ) -> StreamManifest:
        manifest = await asyncio.to_thread(read_manifest, self.store, key, StreamManifest)
        check_manifest(manifest, self.wanted, int(self.clock() * 1000))
        probes = plan_probes(
            manifest.checkpoints, shards, new_from_start=self.wanted.reads_new_shards_from_start
        )
        limit = asyncio.Semaphore(PROBES_AT_ONCE)

        async def ask(probe: Probe) -> str | None:
            async with limit:
                return await self._probe(stream, probe)

        for stale in await asyncio.gather(*(ask(p) for p in probes)):
            if stale is not None:
                raise SnapshotRejectedError(stale)
        return manifest

    async def _probe(self, stream: StreamReader, probe: Probe) -> str | None:
        """None when reading can start there; else why the snapshot cannot be used."""
        try:
            await stream.get_shard_iterator(
                self.wanted.stream_arn, probe.shard_id, probe.kind, probe.sequence_number
            )
        except TrimmedDataError:
            return probe.stale
        except InvalidRequestError as exc:
            return (
                f"corrupt: {probe.sequence_number} is not a position of shard "
                f"{probe.shard_id}: {exc.message}"
            )
        except StreamError as exc:
            raise StreamUncheckableError(
                f"cannot check the snapshot against the stream: {exc}"
            ) from None
        return None

    def _fetch(self, manifest: StreamManifest, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".bridge-restore-", dir=target.parent) as tmp:
            restored = fetch_object(self.store, manifest.object, Path(tmp))
            verify_file(restored, manifest)
            install_file(restored, target)


def verify_file(path: Path, manifest: StreamManifest) -> None:
    """The file opens as SQLite, has the manifest's layout, items and checkpoints."""
    table = manifest.source.replica_table
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            rows = db.execute("SELECT shard_id, checkpoint FROM _bridge_checkpoints").fetchall()
            known = db.execute("SELECT 1 FROM _bridge_tables WHERE name = ?", (table,)).fetchone()
            items = db.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0] if known else 0
    except sqlite3.DatabaseError as exc:
        raise CorruptSnapshotError(f"not a replica file: {exc}") from None
    if version != manifest.schema_version:
        raise CorruptSnapshotError(
            f"the file has layout version {version}, the manifest says {manifest.schema_version}"
        )
    checkpoints = {str(shard): str(checkpoint) for shard, checkpoint in rows}
    if checkpoints != manifest.checkpoints:
        raise CorruptSnapshotError("the file's checkpoints differ from the manifest's")
    if items != manifest.items:
        raise CorruptSnapshotError(
            f"the file holds {items} items, the manifest says {manifest.items}"
        )
