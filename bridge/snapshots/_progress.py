"""Progress of a long transfer: a rich bar on a terminal, structured log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog

LOG_EVERY = 5.0
"""Seconds between progress log lines when not on a terminal."""


class TransferProgress:
    """``advance(n)`` as bytes (or, with ``unit="items"``, items) move; ``close()`` at the
    end. Safe to call from one thread."""

    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        unit: str = "bytes",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        **context: Any,
    ) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self.clock = clock
        self.started = clock()
        self._next_log = self.started + LOG_EVERY
        self._log = structlog.get_logger("bridge.progress").bind(step=what, **context)
        out = stream if stream is not None else sys.stderr
        self._bar: Any = None
        if out.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            counts: list[ProgressColumn] = (
                [DownloadColumn(), TransferSpeedColumn()]
                if unit == "bytes"
                else [MofNCompleteColumn()]
            )
            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                *counts,
                TimeRemainingColumn(),
                console=Console(file=out),
                transient=False,
            )
            self._task = self._bar.add_task(what, total=total)
            self._bar.start()

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            return
        now = self.clock()
        if now >= self._next_log:
            self._next_log = now + LOG_EVERY
            self._log.info("progress", **self.fields(now))

    def fields(self, now: float) -> dict[str, Any]:
        elapsed = max(now - self.started, 1e-9)
        out: dict[str, Any] = {self.unit: self.done, f"total_{self.unit}": self.total}
        if self.unit == "bytes":
            out["rate_mb_s"] = round(self.done / elapsed / 1e6, 1)
        else:
            out[f"{self.unit}_per_s"] = round(self.done / elapsed)
        out["elapsed_s"] = round(elapsed, 1)
        if self.total:
            out["percent"] = round(100 * self.done / self.total, 1)
        return out

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._log.info("done", **self.fields(self.clock()))
