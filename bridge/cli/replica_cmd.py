"""``bridge replica``: follow a Kafka topic into a local SQLite replica."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bridge import eventloop
from bridge.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, fail, fail_to_start, state
from bridge.config import parse_duration
from bridge.logs import configure_logging

if TYPE_CHECKING:
    from bridge.replica import ReplicaConfig

ReplicaConfigOption = typer.Option(
    ...,
    "--config",
    "-c",
    envvar="BRIDGE_CONFIG",
    help="Path to replica.yaml. Every key can be overridden by BRIDGE_<SECTION>__<KEY>.",
    show_envvar=True,
)


def replica(
    config: Path = ReplicaConfigOption,
    startup_timeout: str = typer.Option(
        "30s",
        "--startup-timeout",
        help="How long the snapshot bucket check is tried again after a passing failure "
        "(no answer, 5xx, throttling) before the start fails.",
    ),
) -> None:
    """Follow every partition of the topic the Kafka processor publishes into a SQLite file.

    Offsets are kept in the file, committed with the data: a restart resumes where it
    stopped. With snapshots, a node without a file restores the newest usable snapshot first.
    SIGTERM or Ctrl-C finishes the transaction in hand and exits 0; a gap in the topic that
    on_gap cannot repair, or no usable snapshot with bootstrap_on_failure: fail, exits 1.
    A snapshot bucket that does not exist fails the start (exit 2).
    """
    import sqlite3

    from bridge.replica import (
        ConfigError,
        ReplicaFileError,
        ReplicaGapError,
        SnapshotRestoreError,
        load_replica_config,
    )

    with eventloop.stop_signals():
        try:
            settings = load_replica_config(config)
        except ConfigError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        try:
            patience = parse_duration(startup_timeout).total_seconds()
        except ValueError as exc:
            fail(f"--startup-timeout: {exc}", EXIT_BAD_INPUT)
        configure_logging(state.log_level, app=settings.app, json=state.log_json)
        try:
            eventloop.run(_replicate(settings, patience), grace=STOP_GRACE)
        except eventloop.Interrupted:
            return
        except _BucketError as exc:
            fail_to_start(exc, EXIT_BAD_INPUT if exc.bad_configuration else EXIT_FAILURE)
        except ReplicaFileError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except (ReplicaGapError, SnapshotRestoreError) as exc:
            fail(str(exc))
        except sqlite3.Error as exc:
            fail(f"replica file {settings.sqlite.path}: {exc}")


STOP_GRACE = 30.0
"""The transaction in hand, the last status row and closing the consumer fit in it."""


class _BucketError(Exception):
    def __init__(self, message: str, *, bad_configuration: bool) -> None:
        super().__init__(message)
        self.bad_configuration = bad_configuration


async def _replicate(settings: ReplicaConfig, patience: float) -> None:
    from bridge.replica import run_replica

    await _check_bucket(settings, patience)
    await run_replica(settings)


async def _check_bucket(settings: ReplicaConfig, patience: float) -> None:
    """The snapshot bucket, when this start will use it (a restore, snapshots on a schedule,
    or gaps repaired from one): a wrong name fails now rather than at the first snapshot."""
    import asyncio

    from bridge.snapshots import BucketMissingError, ObjectStoreError, S3ObjectStore

    snapshots = settings.snapshots
    if snapshots is None:
        return
    restoring = snapshots.restore != "never" and not settings.sqlite.path.exists()
    taking = snapshots.interval.total_seconds() > 0
    if not (restoring or taking or settings.on_gap == "restore"):
        return
    store = S3ObjectStore(
        snapshots.bucket, region=snapshots.region, endpoint_url=snapshots.endpoint_url
    )
    try:
        await asyncio.to_thread(
            store.check_bucket,
            retry_for=patience,
            stop=lambda: eventloop.stop_requested() is not None,
        )
    except BucketMissingError:
        where = snapshots.endpoint_url or f"region {snapshots.region}"
        raise _BucketError(
            f"snapshot bucket {snapshots.bucket!r} (snapshots.bucket) does not exist at {where}",
            bad_configuration=True,
        ) from None
    except ObjectStoreError as exc:
        raise _BucketError(
            f"cannot check snapshot bucket {snapshots.bucket!r} (snapshots.bucket): {exc}",
            bad_configuration=not exc.transient,
        ) from exc
