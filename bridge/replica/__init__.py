"""``bridge replica``: follow the Kafka processor's topic into a local SQLite replica.

The replica has the SQLite processor's layout (so ``bridge query`` and ``Replica`` read it),
plus the Kafka offsets it applied, committed with the data. See docs/replica.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from bridge.config.loader import ConfigError, load_model
from bridge.filters import KeyPrefixFilter
from bridge.replica._config import (
    KafkaSourceConfig,
    ReplicaConfig,
    ReplicaMetricsConfig,
    SqliteTargetConfig,
)
from bridge.replica._config import ReplicaFilterConfig as FilterConfig
from bridge.replica._filter import ItemFilter
from bridge.replica._follower import (
    ReplicaFollower,
    ReplicaGapError,
    SnapshotRestoreError,
    run_replica,
)
from bridge.replica._snapshot_restorer import Rejection, RestoreResult, SnapshotRestorer
from bridge.replica._snapshot_taker import SnapshotTaker
from bridge.replica._store import SCHEMA_VERSION, ReplicaFileError, ReplicaStore, stored_offsets
from bridge.snapshots import SnapshotsConfig, copy_replica


def load_replica_config(path: Path | str, env: Mapping[str, str] | None = None) -> ReplicaConfig:
    """``replica.yaml`` with ``BRIDGE_`` overrides (``env``, default the process's), validated;
    raises ``ConfigError`` naming each bad key."""
    return load_model(ReplicaConfig, path, env)


def is_replica_config(path: Path | str) -> bool:
    """Whether a file is a ``replica.yaml`` (it has ``kafka`` and ``sqlite``, no ``source``)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and {"kafka", "sqlite"} <= data.keys() and "source" not in data


__all__ = [
    "SCHEMA_VERSION",
    "ConfigError",
    "FilterConfig",
    "ItemFilter",
    "KafkaSourceConfig",
    "KeyPrefixFilter",
    "Rejection",
    "ReplicaConfig",
    "ReplicaFileError",
    "ReplicaFollower",
    "ReplicaGapError",
    "ReplicaMetricsConfig",
    "ReplicaStore",
    "RestoreResult",
    "SnapshotRestoreError",
    "SnapshotRestorer",
    "SnapshotTaker",
    "SnapshotsConfig",
    "SqliteTargetConfig",
    "copy_replica",
    "is_replica_config",
    "load_replica_config",
    "run_replica",
    "stored_offsets",
]
