"""``bridge run``: one worker of the cluster."""

from __future__ import annotations

from pathlib import Path

import structlog
import typer

from bridge import eventloop
from bridge.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    ConfigOption,
    fail,
    fail_to_start,
    load_or_exit,
)
from bridge.config import parse_duration

STOP_MARGIN = 10.0
"""Beyond the drain and a last renewal: how long the release of the leases may take before a
worker that still runs after a stop request is cancelled."""


def run(
    config: Path = ConfigOption,
    startup_timeout: str = typer.Option(
        "30s",
        "--startup-timeout",
        help="How long start-up calls that fail for a passing reason (connection refused, "
        "timeouts, 5xx, throttling) are tried again before the start fails.",
    ),
) -> None:
    """Run a worker: take leases on the stream's shards and apply every change to the processor.

    Start as many as you like with the same configuration; they share the shards. SIGTERM or
    Ctrl-C finishes the batches in hand, checkpoints and releases the leases, then exits 0
    (at any moment: during start-up it simply stops). A start-up error is one line naming the
    setting or address behind it; --log-level debug adds its traceback.
    """
    # Imported here so that `bridge --help` and `bridge config check` stay light.
    from bridge.errors import WorkerFailedError
    from bridge.processors.loader import ProcessorLoadError
    from bridge.streams.errors import FatalStreamError
    from bridge.worker.app import StartupError, run_worker

    with eventloop.stop_signals():
        settings = load_or_exit(config)
        try:
            patience = parse_duration(startup_timeout).total_seconds()
        except ValueError as exc:
            fail(f"--startup-timeout: {exc}", EXIT_BAD_INPUT)
        coordination = settings.coordination
        grace = (
            coordination.drain_timeout.total_seconds()
            + coordination.lease_duration.total_seconds()
            + STOP_MARGIN
        )
        log = structlog.get_logger("bridge.cli")
        try:
            eventloop.run(run_worker(settings, startup_timeout=patience), grace=grace)
        except eventloop.Interrupted as exc:
            log.info("worker stopped", reason=str(exc))
        except StartupError as exc:
            fail_to_start(exc, EXIT_BAD_INPUT if exc.bad_configuration else EXIT_FAILURE)
        except ProcessorLoadError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except (FatalStreamError, WorkerFailedError) as exc:
            log.error("worker failed", error=str(exc))
            fail(str(exc))
