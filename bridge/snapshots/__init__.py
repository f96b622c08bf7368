"""Snapshots of a SQLite replica in S3: the ``snapshots`` settings, the manifest format, the
object store seam, gzip and sha256, uploading and checking one object, progress reporting.
What goes into a snapshot and whether its position is still usable is the user's:
``bridge.replica`` (docs/replica.md) and the SQLite processor (docs/sqlite.md)."""

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
    ManifestBase,
    SnapshotObject,
    SnapshotSource,
    StreamManifest,
    StreamSnapshotSource,
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
from bridge.snapshots._settings import SnapshotsConfig
from bridge.snapshots._transfer import (
    Rejection,
    RestoreOutcome,
    SnapshotRejectedError,
    Uploaded,
    expire_snapshots,
    fetch_object,
    install_file,
    put_manifest,
    read_manifest,
    upload_copy,
)

__all__ = [
    "DATA_SUFFIX",
    "FORMAT",
    "MANIFEST_SUFFIX",
    "Compressed",
    "CorruptSnapshotError",
    "Manifest",
    "ManifestBase",
    "MemoryObjectStore",
    "ObjectStore",
    "ObjectStoreError",
    "Rejection",
    "RestoreOutcome",
    "S3ObjectStore",
    "SnapshotObject",
    "SnapshotRejectedError",
    "SnapshotSource",
    "SnapshotsConfig",
    "StreamManifest",
    "StreamSnapshotSource",
    "TransferProgress",
    "Uploaded",
    "app_prefix",
    "compress_file",
    "created_of",
    "data_key_of",
    "decompress_file",
    "describe_gap",
    "expire_snapshots",
    "expired",
    "fetch_object",
    "install_file",
    "newest_first",
    "offsets_gap",
    "put_manifest",
    "read_manifest",
    "sha256_of",
    "snapshot_base",
    "upload_copy",
]
