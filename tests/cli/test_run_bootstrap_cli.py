"""``source.start: bootstrap`` with a processor that cannot take a snapshot is a configuration
error naming the key, found before anything is read: never a start that silently streams."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.processors.loader import ProcessorLoadError, load_factory
from tests.cli.test_run_cli import bridge_run


def test_bootstrap_with_a_processor_that_cannot_snapshot_exits_2_naming_source_start(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(
        "app: cli-bootstrap\n"
        "source: {table: orders, endpoint_url: 'http://127.0.0.1:9', start: bootstrap}\n"
        "processor: {kind: log}\n"
    )
    done = bridge_run(config)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "source.start" in last and "log" in last


def test_processors_that_snapshot_or_scan_themselves_accept_bootstrap(tmp_path: Path) -> None:
    kafka = load_factory(
        "kafka", {"bootstrap_servers": "127.0.0.1:9"}, table="orders", start="bootstrap"
    )
    assert kafka.takes_snapshots()
    sqlite = load_factory(
        "sqlite", {"path": str(tmp_path / "r.db")}, table="orders", start="bootstrap"
    )
    assert sqlite.scans_itself()
    custom = load_factory("tests.processors.sample_processors:SnapshotTaker", {}, start="bootstrap")
    assert custom.takes_snapshots()
    with pytest.raises(ProcessorLoadError, match=r"source\.start"):
        load_factory("tests.processors.sample_processors:Collecting", {}, start="bootstrap")
    assert not load_factory("log", {}, start="auto").takes_snapshots()  # auto just streams


def test_rebootstrap_with_a_processor_that_cannot_snapshot_exits_2_naming_source_on_trimmed(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(
        "app: cli-rebootstrap\n"
        "source: {table: orders, endpoint_url: 'http://127.0.0.1:9', on_trimmed: rebootstrap}\n"
        "processor: {kind: log}\n"
    )
    done = bridge_run(config)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "source.on_trimmed" in last and "log" in last


def test_processors_that_take_fresh_snapshots_accept_rebootstrap(tmp_path: Path) -> None:
    for kind, options in [
        ("kafka", {"bootstrap_servers": "127.0.0.1:9"}),
        ("sqlite", {"path": str(tmp_path / "r.db")}),
        ("tests.processors.sample_processors:SnapshotTaker", {}),
    ]:
        factory = load_factory(kind, options, table="orders", on_trimmed="rebootstrap")
        assert factory.takes_fresh_snapshots()
    with pytest.raises(ProcessorLoadError, match=r"source\.on_trimmed"):
        load_factory("tests.processors.sample_processors:Collecting", {}, on_trimmed="rebootstrap")
