"""structlog set-up: JSON lines for machines, readable lines for people, app and worker on each."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error", "critical")


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the moment of writing.

    Binding the stream object once breaks when something swaps ``sys.stderr`` and closes the
    old one (test runners, embedding applications); log lines must still go somewhere.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    level: str = "info",
    *,
    app: str = "bridge",
    worker: str | None = None,
    stream: TextIO | None = None,
    json: bool | None = None,
) -> None:
    """Configure structlog (and the stdlib loggers of our libraries) once per process.

    ``json=None`` chooses by the stream: a terminal gets coloured console output, anything else
    (a pod's log collector, a file) gets one JSON object per line.
    """
    out: TextIO = stream or _CurrentStderr()  # type: ignore[assignment]
    as_json = not out.isatty() if json is None else json
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if as_json:
        shared += [structlog.processors.dict_tracebacks]
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(app=app, worker=worker or default_worker_id())
    # Libraries log through the stdlib; keep their noise out unless asked for.
    logging.basicConfig(stream=out, level=max(numeric, logging.WARNING), force=True)
