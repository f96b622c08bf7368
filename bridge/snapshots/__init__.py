"""Snapshots of a SQLite replica in S3: the manifest format, the object store seam, gzip and
sha256, progress reporting. What goes into a replica's snapshot and how a node restores one
is ``bridge.replica``'s (docs/replica.md, "Snapshots")."""

from bridge.snapshots._files import (
    Compressed,
    CorruptSnapshotError,
    compress_file,
    decompress_file,
    sha256_of,
)
from bridge.snapshots._manifest import (
    DATA_SUFFIX,
    FORMAT,
    MANIFEST_SUFFIX,
    Manifest,
    SnapshotObject,
    SnapshotSource,
    app_prefix,
    created_of,
    data_key_of,
    describe_gap,
    expired,
    newest_first,
    offsets_gap,
    snapshot_base,
)
from bridge.snapshots._objects import (
    MemoryObjectStore,
    ObjectStore,
    ObjectStoreError,
    S3ObjectStore,
)
from bridge.snapshots._progress import TransferProgress

__all__ = [
    "DATA_SUFFIX",
    "FORMAT",
    "MANIFEST_SUFFIX",
    "Compressed",
    "CorruptSnapshotError",
    "Manifest",
    "MemoryObjectStore",
    "ObjectStore",
    "ObjectStoreError",
    "S3ObjectStore",
    "SnapshotObject",
    "SnapshotSource",
    "TransferProgress",
    "app_prefix",
    "compress_file",
    "created_of",
    "data_key_of",
    "decompress_file",
    "describe_gap",
    "expired",
    "newest_first",
    "offsets_gap",
    "sha256_of",
    "snapshot_base",
]
