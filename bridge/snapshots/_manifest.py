"""What a snapshot is: its manifest, its keys, which ones expire, which ones are usable.

Pure: no I/O, time passed in. A snapshot is two objects, the compressed SQLite copy and its
manifest (JSON) beside it; the manifest is written last, so a snapshot without one does not
exist (an upload that died half-way is invisible and expires with the retention sweep).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_SUFFIX = ".manifest.json"
DATA_SUFFIX = ".sqlite.gz"
FORMAT = 1
"""The manifest's own format; a reader refuses a newer one."""
ORPHAN_GRACE = timedelta(hours=1)
"""A data object without a manifest is deleted only once the newest snapshot is this much
newer: another node may be uploading it right now."""


class SnapshotSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["kafka"] = "kafka"
    topic: str
    tables: list[str]
    """The replica tables in the file."""
    filter: dict[str, object] | None = None
    """The replica's ``filter`` when the copy was taken: a node with another filter cannot
    use it (it holds other items)."""


class SnapshotObject(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    size: int
    """Bytes of the compressed object."""
    sha256: str
    """Of the compressed object, hex."""
    compression: Literal["gzip"] = "gzip"
    raw_size: int
    """Bytes of the SQLite file once decompressed."""


class ManifestBase(BaseModel):
    """What every manifest carries, whatever the replica's source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT
    id: str
    app: str
    created_ms: int
    created: str
    """``created_ms`` as ISO 8601 (UTC), for people."""
    watermark_ms: int | None
    """The oldest position's newest applied change time (epoch ms)."""
    schema_version: int
    """The file's layout version (``PRAGMA user_version``)."""
    items: int = Field(ge=0)
    object: SnapshotObject
    bridge_version: str


class Manifest(ManifestBase):
    """The manifest of a ``bridge replica`` snapshot (a Kafka topic's replica)."""

    source: SnapshotSource
    offsets: dict[int, int]
    """The last offset applied per partition: the copy resumes each at ``offset + 1``."""


class StreamSnapshotSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["dynamodb_stream"] = "dynamodb_stream"
    table: str
    """The DynamoDB table whose stream the replica reads."""
    stream_arn: str
    """The stream the checkpoints belong to: a table whose stream was replaced (disabled and
    enabled again) has other shards, and the checkpoints mean nothing there."""
    replica_table: str
    """The table's name inside the SQLite file."""


class StreamManifest(ManifestBase):
    """The manifest of a SQLite processor's snapshot (a DynamoDB stream's replica)."""

    source: StreamSnapshotSource
    checkpoints: dict[str, str]
    """Per shard: the last sequence number applied, or ``SHARD_END`` for a shard read to its
    end. The copy resumes each after it."""


def snapshot_base(prefix: str, app: str, created: datetime) -> tuple[str, str]:
    """``(base key, id)``; keys sort by creation time, so listing them sorts snapshots."""
    ident = secrets.token_hex(4)
    stamp = created.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{app_prefix(prefix, app)}{stamp}-{ident}", ident


def app_prefix(prefix: str, app: str) -> str:
    return f"{prefix}{app}/"


def newest_first(keys: Sequence[str]) -> list[str]:
    """The manifest keys among ``keys``, newest snapshot first."""
    return sorted((k for k in keys if k.endswith(MANIFEST_SUFFIX)), reverse=True)


def data_key_of(manifest_key: str) -> str:
    return manifest_key.removesuffix(MANIFEST_SUFFIX) + DATA_SUFFIX


def created_of(key: str) -> datetime | None:
    """The creation time encoded in a snapshot key, or None for a key not ours."""
    name = key.rsplit("/", 1)[-1]
    try:
        return datetime.strptime(name[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def expired(
    keys: Sequence[str], *, keep: int, max_age: timedelta | None, now: datetime
) -> list[str]:
    """Objects to delete, manifests first (so a snapshot stops existing before its data goes):
    snapshots beyond the newest ``keep``, those older than ``max_age`` (never the newest one),
    and data objects left without a manifest by an upload that died (``ORPHAN_GRACE``)."""
    manifests = newest_first(keys)
    doomed = manifests[keep:]
    if max_age is not None:
        doomed += [
            k
            for k in manifests[1:keep]
            if (created := created_of(k)) is not None and now - created > max_age
        ]
    survivors = {data_key_of(k) for k in manifests if k not in doomed}
    newest = created_of(manifests[0]) if manifests else None
    orphans = [
        k
        for k in keys
        if k.endswith(DATA_SUFFIX)
        and k not in survivors
        and newest is not None
        and (created := created_of(k)) is not None
        and created < newest - ORPHAN_GRACE
    ]
    present = set(keys)
    data = {data_key_of(k) for k in doomed} & present
    return sorted(set(doomed), reverse=True) + sorted(data | set(orphans), reverse=True)


def offsets_gap(
    offsets: Mapping[int, int], low_watermarks: Mapping[int, int]
) -> dict[int, tuple[int, int]]:
    """Partitions whose next offset (stored + 1) is below the topic's low watermark: messages
    between them were deleted before they were applied. ``{partition: (next, low)}``."""
    return {
        partition: (last + 1, low_watermarks[partition])
        for partition, last in sorted(offsets.items())
        if partition in low_watermarks and last + 1 < low_watermarks[partition]
    }


def describe_gap(gaps: Mapping[int, tuple[int, int]]) -> str:
    return "; ".join(
        f"partition {p}: offsets {nxt}..{low - 1} ({low - nxt} messages) are no longer in "
        f"the topic (it begins at {low})"
        for p, (nxt, low) in sorted(gaps.items())
    )
