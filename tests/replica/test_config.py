"""replica.yaml: validated like bridge.yaml, with the bad key named, and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bridge.replica import ConfigError, ReplicaConfig, load_replica_config
from tests.deploy.chart import REPO

GOOD: dict[str, Any] = {
    "app": "orders-edge",
    "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topic": "cdc.orders"},
    "sqlite": {"path": "/tmp/orders.sqlite"},
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "replica.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_chart_example_is_a_valid_replica_config(tmp_path: Path) -> None:
    values = yaml.safe_load((REPO / "helm/bridge/examples/values-replica.yaml").read_text())
    config = load_replica_config(write(tmp_path, values["replicaConfig"]), env={})
    assert config.kafka.topic == "cdc.orders"
    assert config.snapshots is not None and config.snapshots.bucket == "orders-bridge-snapshots"
    assert config.ready_lag.total_seconds() == 2
    assert config.metrics.port == 9400


def test_defaults(tmp_path: Path) -> None:
    config = load_replica_config(write(tmp_path, GOOD), env={})
    assert config.sqlite.journal_mode == "wal" and config.sqlite.table is None
    assert config.kafka.max_batch == 1000 and config.filter is None
    assert config.stall_after.total_seconds() == 10
    assert config.on_gap == "fail" and config.snapshots is None


def test_snapshot_defaults_take_none_and_restore_if_missing(tmp_path: Path) -> None:
    config = load_replica_config(write(tmp_path, {**GOOD, "snapshots": {"bucket": "bkt"}}), env={})
    assert config.snapshots is not None
    assert config.snapshots.interval.total_seconds() == 0 and config.snapshots.keep == 5
    assert config.snapshots.restore == "if_missing"
    assert config.snapshots.bootstrap_on_failure == "fallback"
    env = {"BRIDGE_SNAPSHOTS__INTERVAL": "10m", "BRIDGE_SNAPSHOTS__MAX_AGE": "7d"}
    config = load_replica_config(write(tmp_path, {**GOOD, "snapshots": {"bucket": "bkt"}}), env=env)
    assert config.snapshots is not None and config.snapshots.interval.total_seconds() == 600
    assert config.snapshots.max_age is not None and config.snapshots.max_age.days == 7


def test_environment_overrides_nest_with_double_underscores(tmp_path: Path) -> None:
    env = {
        "BRIDGE_KAFKA__TOPIC": "other",
        "BRIDGE_READY_LAG": "500ms",
        "BRIDGE_SQLITE__TABLE": "orders_copy",
        "BRIDGE_LOG_LEVEL": "debug",  # the command line's, not a key
    }
    config = load_replica_config(write(tmp_path, GOOD), env=env)
    assert config.kafka.topic == "other"
    assert config.ready_lag.total_seconds() == 0.5
    assert config.sqlite.table == "orders_copy"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"kafka": {**GOOD["kafka"], "topik": "x"}}, "kafka.topik: unknown key"),
        ({"ready_lag": "soon"}, "ready_lag: expected a duration"),
        ({"sqlite": {"path": "x", "journal_mode": "wall"}}, "sqlite.journal_mode: "),
        (
            {"kafka": {**GOOD["kafka"], "options": {"enable.auto.commit": True}}},
            "kafka.options: enable.auto.commit is set by bridge replica",
        ),
        ({"filter": {"attribute": "tenant"}}, "filter: filter.attribute needs equals or in"),
        ({"filter": {}}, "filter: an empty filter"),
        ({"snapshots": {"prefix": "x/"}}, "snapshots.bucket: required key is missing"),
        ({"app": "no spaces"}, "app: expected letters"),
        ({"on_gap": "restore"}, "on_gap: restore needs a snapshots section"),
        ({"on_gap": "skip"}, "on_gap: "),
        (
            {"kafka": {**GOOD["kafka"], "options": {"auto.offset.reset": "latest"}}},
            "kafka.options: auto.offset.reset is set by bridge replica",
        ),
        ({"snapshots": {"bucket": "bkt", "keep": 0}}, "snapshots.keep: "),
        ({"snapshots": {"bucket": "bkt", "restore": "always"}}, "snapshots.restore: "),
    ],
)
def test_a_bad_key_is_named(tmp_path: Path, change: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_replica_config(write(tmp_path, {**GOOD, **change}), env={})
    assert expected in str(raised.value), str(raised.value)


def test_a_bad_environment_override_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka.max_batch: .*\[from BRIDGE_KAFKA__MAX_BATCH\]"):
        load_replica_config(write(tmp_path, GOOD), env={"BRIDGE_KAFKA__MAX_BATCH": "0"})


def test_filters_in_both_spellings(tmp_path: Path) -> None:
    config = load_replica_config(
        write(
            tmp_path,
            {
                **GOOD,
                "filter": {
                    "key_prefix": {"attribute": "pk", "prefix": "t1#"},
                    "attribute": "customer.region",
                    "in": ["eu", "us"],
                },
            },
        ),
        env={},
    )
    assert config.filter is not None and config.filter.in_ == ["eu", "us"]


def test_bridge_replica_exits_2_naming_the_bad_key(tmp_path: Path) -> None:
    path = write(tmp_path, {**GOOD, "sqlite": {"path": "x", "tabel": "t"}})
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "replica", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean,
    )
    assert done.returncode == 2, done.stderr
    assert "sqlite.tabel: unknown key" in done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "bridge", "replica", "-c", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean,
    )
    assert missing.returncode == 2 and "no such configuration file" in missing.stderr


def test_event_names_are_not_a_replicas_to_filter() -> None:
    base = {
        "app": "edge",
        "kafka": {"bootstrap_servers": "k:9092", "topic": "orders"},
        "sqlite": {"path": "/tmp/r.db"},
    }
    with pytest.raises(ValidationError, match=r"filter\.events is for bridge run"):
        ReplicaConfig.model_validate({**base, "filter": {"events": ["INSERT"]}})
    kept = ReplicaConfig.model_validate(
        {**base, "filter": {"where": [{"attribute": "a", "gte": 1}]}}
    )
    assert kept.filter is not None and kept.filter.where[0].gte == 1
