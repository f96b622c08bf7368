"""The ``bridge`` command line.

``main`` turns SIGINT and SIGTERM into stop requests before it imports anything heavy: a
signal that lands while typer, pydantic or botocore load must end the command cleanly, not
as a traceback out of an import. The commands themselves live in ``bridge.cli._app``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from bridge import eventloop

if TYPE_CHECKING:
    import typer

EXIT_DEADLINE = 10.0
"""After the command returned, how long the interpreter may take to exit: it joins every
thread first, and one stuck in a blocking call would keep the process alive for good."""


def main() -> None:
    eventloop.install_stop_signals()
    from bridge.cli._app import app

    try:
        app()
    except SystemExit as exc:
        # The command is over and said so: a signal from here on must not change its exit
        # code. Python puts its default handlers back while it shuts down (a late SIGINT or
        # SIGTERM would kill the process) unless a signal is ignored.
        for signum in eventloop.STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        _exit_within(EXIT_DEADLINE, _exit_code(exc))
        raise


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def _exit_within(seconds: float, code: int) -> None:
    def cut_short() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to say
                stream.flush()
        os._exit(code)

    timer = threading.Timer(seconds, cut_short)
    timer.daemon = True
    timer.start()


def __getattr__(name: str) -> typer.Typer:
    """``bridge.cli.app``, imported only when asked for (tests, ``python -m bridge.local``)."""
    if name == "app":
        from bridge.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
