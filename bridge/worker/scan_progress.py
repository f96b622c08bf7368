"""This worker's part of the table's snapshot, shown as one progress line (a bar on a
terminal, log lines otherwise) for every segment it scans, however many at once."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from bridge.snapshots import TransferProgress

T = TypeVar("T")


class ScanProgress:
    def __init__(self, table: str) -> None:
        self.table = table
        self._running = 0
        self._progress: TransferProgress | None = None

    async def around(self, scan: Awaitable[T]) -> T:
        """Run one segment's scan inside the line: it opens with the first, closes with the
        last that ends."""
        if self._progress is None:
            self._progress = TransferProgress("snapshot scan", None, unit="items", table=self.table)
        self._running += 1
        try:
            return await scan
        finally:
            self._running -= 1
            if self._running == 0 and self._progress is not None:
                self._progress.close()
                self._progress = None

    def advance(self, items: int) -> None:
        if self._progress is not None:
            self._progress.advance(items)
