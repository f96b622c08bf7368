"""``bridge run``: one worker of the cluster."""

from __future__ import annotations

from pathlib import Path

import structlog

from bridge import eventloop
from bridge.cli.common import EXIT_BAD_INPUT, ConfigOption, fail, load_or_exit

STOP_MARGIN = 10.0
"""Beyond the drain and a last renewal: how long the release of the leases may take before a
worker that still runs after a stop request is cancelled."""


def run(config: Path = ConfigOption) -> None:
    """Run a worker: take leases on the stream's shards and apply every change to the processor.

    Start as many as you like with the same configuration; they share the shards. SIGTERM or
    Ctrl-C finishes the batches in hand, checkpoints and releases the leases, then exits 0
    (at any moment: during start-up it simply stops).
    """
    # Imported here so that `bridge --help` and `bridge config check` stay light.
    from bridge.errors import WorkerFailedError
    from bridge.processors.loader import ProcessorLoadError
    from bridge.streams.errors import FatalStreamError
    from bridge.worker.app import run_worker

    with eventloop.stop_signals():
        settings = load_or_exit(config)
        coordination = settings.coordination
        grace = (
            coordination.drain_timeout.total_seconds()
            + coordination.lease_duration.total_seconds()
            + STOP_MARGIN
        )
        log = structlog.get_logger("bridge.cli")
        try:
            eventloop.run(run_worker(settings), grace=grace)
        except eventloop.Interrupted as exc:
            log.info("worker stopped", reason=str(exc))
        except ProcessorLoadError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except (FatalStreamError, WorkerFailedError) as exc:
            log.error("worker failed", error=str(exc))
            fail(str(exc))
