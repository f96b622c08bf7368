"""``bridge demo`` end to end, as the README's first command runs it: separate processes,
a real local endpoint, and the demo's own check that every change arrived once and in order."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_reads_every_change_once_in_order_through_shard_rotations() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "demo",
            "--writes",
            "600",
            "--keys",
            "40",
            "--rate",
            "3000",
            "--rotate-records",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "120"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {
        cells[0]: cells[1]
        for line in done.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 2
    }
    assert rows["changes written"] == "600"
    assert rows["changes published (acked)"] == "600"
    assert rows["messages in topic 'demo-orders'"] == "600"
    assert rows["duplicates"] == "0"
    assert rows["out of order (per item)"] == "0"
    read, in_stream = (int(n) for n in rows["shards read / in stream"].split(" / "))
    assert read > 4, "shards should have rotated at least once"
    assert read <= in_stream
