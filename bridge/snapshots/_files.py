"""The file a snapshot is made of: a consistent copy of the live SQLite file, gzip (stdlib)
streamed in chunks, sha256 of the compressed bytes computed on the way, and the checks a
download passes before it is installed.

The copy is ``VACUUM INTO`` from a connection of its own: in WAL mode that is one read
transaction, so the writer keeps committing while it runs, and the copy holds rows and
positions (offsets, checkpoints) of one instant, because they commit together.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 4 * 1024 * 1024
_GZIP = 16 + zlib.MAX_WBITS


class CorruptSnapshotError(Exception):
    """The object is not what its manifest says (checksum, compression, SQLite)."""


def copy_replica(source: Path, target: Path) -> None:
    """A consistent copy of ``source`` from a connection of its own (WAL: the writer goes on)."""
    with contextlib.closing(sqlite3.connect(source, timeout=30, isolation_level=None)) as db:
        db.execute("VACUUM INTO ?", (str(target),))


@dataclass(frozen=True)
class Compressed:
    size: int
    sha256: str
    raw_size: int


def compress_file(
    source: Path, target: Path, level: int, progress: Callable[[int], None] | None = None
) -> Compressed:
    digest = hashlib.sha256()
    packer = zlib.compressobj(level, zlib.DEFLATED, _GZIP)
    size = raw = 0
    with source.open("rb") as inp, target.open("wb") as out:
        while chunk := inp.read(CHUNK):
            raw += len(chunk)
            packed = packer.compress(chunk)
            if packed:
                out.write(packed)
                digest.update(packed)
                size += len(packed)
            if progress is not None:
                progress(len(chunk))
        packed = packer.flush()
        out.write(packed)
        digest.update(packed)
        size += len(packed)
    return Compressed(size, digest.hexdigest(), raw)


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as inp:
        while chunk := inp.read(CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def decompress_file(
    source: Path, target: Path, progress: Callable[[int], None] | None = None
) -> int:
    """Bytes written; ``CorruptSnapshotError`` if ``source`` is not a complete gzip stream."""
    unpacker = zlib.decompressobj(_GZIP)
    written = 0
    try:
        with source.open("rb") as inp, target.open("wb") as out:
            while chunk := inp.read(CHUNK):
                data = unpacker.decompress(chunk)
                out.write(data)
                written += len(data)
                if progress is not None:
                    progress(len(chunk))
            tail = unpacker.flush()
            out.write(tail)
            written += len(tail)
    except zlib.error as exc:
        raise CorruptSnapshotError(f"not a gzip stream: {exc}") from None
    if not unpacker.eof:
        raise CorruptSnapshotError("the gzip stream is truncated")
    return written
