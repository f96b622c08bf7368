"""``replica.yaml``: what ``bridge replica`` follows, where it writes, what it keeps.

Loaded like ``bridge.yaml`` (``bridge.config.load_model``): unknown keys are refused, durations
are written ``2s``/``250ms``, and every key can be overridden by ``BRIDGE_<SECTION>__<KEY>``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bridge.config.durations import Duration
from bridge.filters import FilterConfig
from bridge.snapshots._settings import SnapshotsConfig

_APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")

# Set by bridge itself: the replica's guarantees rest on them (offsets live in SQLite only,
# partition ends are how it knows it caught up, an offset out of range is an error, never a
# silent jump: ``on_gap``).
_RESERVED_OPTIONS = frozenset(
    {
        "auto.offset.reset",
        "bootstrap.servers",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.partition.eof",
        "error_cb",
        "logger",
        "on_commit",
        "stats_cb",
        "throttle_cb",
    }
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class KafkaSourceConfig(_Section):
    """The topic the Kafka processor publishes (DESIGN.md "Kafka envelope")."""

    bootstrap_servers: str | list[str] = Field(min_length=1)
    """``host:port`` of one or more brokers (a comma-separated string or a list)."""
    topic: str = Field(min_length=1, max_length=249)
    """The topic's actual name (not a template): every partition of it is read."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Extra librdkafka consumer settings, e.g. ``{security.protocol: SSL}``."""
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    """Messages applied per SQLite transaction at most."""
    check_interval: Duration = timedelta(seconds=1)
    """How often the topic's metadata is fetched: finds new partitions, proves the broker
    answers (readiness turns false when it stops answering)."""

    @field_validator("options")
    @classmethod
    def _not_reserved(cls, options: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(_RESERVED_OPTIONS & options.keys())
        if reserved:
            raise ValueError(
                f"{reserved[0]} is set by bridge replica (offsets are kept in the SQLite file)"
            )
        return options

    @property
    def servers(self) -> str:
        if isinstance(self.bootstrap_servers, str):
            return self.bootstrap_servers
        return ",".join(self.bootstrap_servers)


class SqliteTargetConfig(_Section):
    """The local replica: the SQLite processor's layout (DESIGN.md "SQLite layout")."""

    path: Path
    table: str | None = Field(default=None, min_length=1)
    """The replica table's name; default the source table's (the envelope's ``table``)."""
    journal_mode: Literal["wal", "delete", "truncate", "persist", "memory", "off"] = "wal"
    """``wal`` lets any SQLite client read while the replica writes."""
    synchronous: Literal["off", "normal", "full", "extra"] = "normal"
    """``full`` survives power loss, not just a crash of the process."""


class ReplicaFilterConfig(FilterConfig):
    """Which items the edge keeps: ``bridge.filters``' language. Event names are not a
    replica's to choose (dropping a REMOVE would keep an item the table no longer has)."""

    @model_validator(mode="after")
    def _no_events(self) -> ReplicaFilterConfig:
        if self.events is not None:
            raise ValueError("filter.events is for bridge run: an edge applies every change")
        return self


class ReplicaMetricsConfig(_Section):
    enabled: bool = True
    port: int = Field(default=9400, ge=0, le=65535)
    """``/metrics``, ``/healthz``, ``/readyz``; 0 picks a free port (useful for tests)."""


class ReplicaConfig(_Section):
    app: str
    """Names this replica in logs and metrics."""
    kafka: KafkaSourceConfig
    sqlite: SqliteTargetConfig
    filter: ReplicaFilterConfig | None = None
    snapshots: SnapshotsConfig | None = None
    ready_lag: Duration = timedelta(seconds=2)
    """Ready while every partition is read to its end, or its newest applied message is
    younger than this."""
    stall_after: Duration = timedelta(seconds=10)
    """Not ready once the broker has not answered for this long."""
    on_gap: Literal["fail", "restore"] = "fail"
    """The stored offset of a partition is no longer in the topic (retention deleted messages
    the replica never applied): ``fail`` exits 1 naming the gap; ``restore`` replaces the file
    with a newer snapshot that covers it (``snapshots`` needed), else exits 1."""
    metrics: ReplicaMetricsConfig = ReplicaMetricsConfig()

    @model_validator(mode="after")
    def _restore_needs_snapshots(self) -> ReplicaConfig:
        if self.on_gap == "restore" and self.snapshots is None:
            raise ValueError("on_gap: restore needs a snapshots section (where to restore from)")
        return self

    @field_validator("app")
    @classmethod
    def _app_name(cls, app: str) -> str:
        if not _APP_NAME.match(app):
            raise ValueError("expected letters, digits, '_', '-' or '.'")
        return app
