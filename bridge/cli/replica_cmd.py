"""``bridge replica``: follow a Kafka topic into a local SQLite replica."""

from __future__ import annotations

from pathlib import Path

import typer

from bridge import eventloop
from bridge.cli.common import EXIT_BAD_INPUT, fail, state
from bridge.logs import configure_logging

ReplicaConfigOption = typer.Option(
    ...,
    "--config",
    "-c",
    envvar="BRIDGE_CONFIG",
    help="Path to replica.yaml. Every key can be overridden by BRIDGE_<SECTION>__<KEY>.",
    show_envvar=True,
)


def replica(config: Path = ReplicaConfigOption) -> None:
    """Follow every partition of the topic the Kafka processor publishes into a SQLite file.

    Offsets are kept in the file, committed with the data: a restart resumes where it
    stopped. With snapshots, a node without a file restores the newest usable snapshot first.
    SIGTERM or Ctrl-C finishes the transaction in hand and exits 0; a gap in the topic that
    on_gap cannot repair, or no usable snapshot with bootstrap_on_failure: fail, exits 1.
    """
    import sqlite3

    from bridge.replica import (
        ConfigError,
        ReplicaFileError,
        ReplicaGapError,
        SnapshotRestoreError,
        load_replica_config,
        run_replica,
    )

    with eventloop.stop_signals():
        try:
            settings = load_replica_config(config)
        except ConfigError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        configure_logging(state.log_level, app=settings.app, json=state.log_json)
        try:
            eventloop.run(run_replica(settings), grace=STOP_GRACE)
        except eventloop.Interrupted:
            return
        except ReplicaFileError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except (ReplicaGapError, SnapshotRestoreError) as exc:
            fail(str(exc))
        except sqlite3.Error as exc:
            fail(f"replica file {settings.sqlite.path}: {exc}")


STOP_GRACE = 30.0
"""The transaction in hand, the last status row and closing the consumer fit in it."""
