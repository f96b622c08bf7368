"""How an emulated stream behaves: shard count, rotation, retention, iterator lifetime."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSettings:
    """Stream behaviour; all durations in seconds. The defaults are the real service's."""

    shards: int = 4
    """Open shards a new stream starts with."""

    max_open_shards: int = 0
    """Cap on open shards; a rotation splits a shard in two only below it. 0 means 2 x shards."""

    rotate_records: int = 0
    """Close a shard after this many records (0: never by count)."""

    rotate_seconds: float = 4 * 3600.0
    """Close a shard this long after it opened (0: never by age). The real service: ~4 h."""

    retention_seconds: float = 24 * 3600.0
    """Records older than this are trimmed, as the real service does after 24 h."""

    iterator_ttl_seconds: float = 15 * 60.0
    """A shard iterator expires this long after it was issued (the real service: 15 min)."""

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("shards must be at least 1")
        if self.max_open_shards and self.max_open_shards < self.shards:
            raise ValueError("max_open_shards must be 0 or at least shards")
        for name in (
            "rotate_records",
            "rotate_seconds",
            "retention_seconds",
            "iterator_ttl_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def open_shard_cap(self) -> int:
        return self.max_open_shards or 2 * self.shards
