"""Progress of long steps (a snapshot's bytes, a bootstrap scan's items): structured log lines
off a terminal, with a rate and, when the total is known, a percentage."""

from __future__ import annotations

import io

from structlog.testing import capture_logs

from bridge.snapshots._progress import LOG_EVERY, TransferProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_items_progress_logs_counts_rate_and_percent_then_done() -> None:
    clock = Clock()
    with capture_logs() as logs:
        progress = TransferProgress(
            "bootstrap scan", 1_000, unit="items", stream=io.StringIO(), clock=clock, table="t"
        )
        progress.advance(100)  # before the first interval: quiet
        clock.now += LOG_EVERY
        progress.advance(150)
        clock.now += 1
        progress.advance(750)
        progress.close()
    lines = [(entry["event"], entry) for entry in logs]
    assert [event for event, _ in lines] == ["progress", "done"]
    first, done = lines[0][1], lines[1][1]
    assert (first["items"], first["total_items"], first["percent"]) == (250, 1_000, 25.0)
    assert first["items_per_s"] == 50 and first["step"] == "bootstrap scan"
    assert (done["items"], done["percent"]) == (1_000, 100.0)


def test_bytes_progress_keeps_its_fields() -> None:
    clock = Clock()
    with capture_logs() as logs:
        progress = TransferProgress("uploading snapshot", None, stream=io.StringIO(), clock=clock)
        clock.now += 2
        progress.advance(4_000_000)
        progress.close()
    (done,) = logs
    assert (done["bytes"], done["total_bytes"], done["rate_mb_s"]) == (4_000_000, None, 2.0)
    assert "percent" not in done
