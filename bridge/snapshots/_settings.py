"""The ``snapshots`` section, shared by ``bridge replica`` and the SQLite processor: where
snapshots live, how often one is taken, how long they are kept, what a cold start does."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge.config.durations import Duration


class SnapshotsConfig(BaseModel):
    """Snapshots of a SQLite replica in S3 (or any S3-compatible store) for a fast cold start:
    a node without a local file restores the newest usable one and resumes from the position
    inside it."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""
    """Prepended to every key: ``<prefix><app>/<created>-<id>.sqlite.gz`` and
    ``.manifest.json`` beside it."""
    region: str = "us-east-1"
    endpoint_url: str | None = None
    """An S3-compatible store; ``null`` means AWS."""
    interval: Duration = timedelta(0)
    """How often this node takes and uploads a snapshot; 0 (the default) never: usually one
    node takes them and every other node only restores."""
    keep: int = Field(default=5, ge=1, le=10_000)
    """After a successful upload, snapshots beyond the newest ``keep`` are deleted."""
    max_age: Duration | None = None
    """After a successful upload, snapshots older than this are deleted too (never the newest)."""
    restore: Literal["if_missing", "never"] = "if_missing"
    """``if_missing``: a node starting without a local file restores the newest usable
    snapshot; ``never``: it never restores."""
    bootstrap_on_failure: Literal["fallback", "fail"] = "fallback"
    """No usable snapshot at a cold start: ``fallback`` loads the data the usual way (the
    replica replays its topic, the SQLite processor starts as ``source.start`` says),
    ``fail`` exits 1 naming why each snapshot was rejected."""
    compress_level: int = Field(default=3, ge=1, le=9)
    """gzip level of the uploaded copy: 1 is fastest, 9 smallest."""

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"
