"""``scripts/bench.py`` still runs: its smallest variants write sane JSON and a PNG.

No timing is asserted: the numbers are for people, on whatever machine runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(out: Path, *args: str) -> None:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            *args,
            "--quick",
            "--out",
            str(out),
            "--report",
            str(out / "BENCHMARKS.md"),
        ],
        cwd=ROOT,
        check=True,
        timeout=600,
    )


def result(out: Path, name: str) -> dict:
    assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    data = json.loads((out / f"{name}.json").read_text())
    assert data["benchmark"] == name
    assert data["quick"] is True
    return data


@pytest.mark.slow
def test_scale_and_report(tmp_path: Path) -> None:
    bench(tmp_path, "scale")
    data = result(tmp_path, "scale")
    assert {run["workers"] for run in data["runs"]} == {10, 50, 200}
    for run in data["runs"]:
        settled = [e for e in run["events"] if "paused" not in e["event"]]  # mid-pause: not yet
        assert all(event["balanced"] for event in settled)
        assert run["events"][-1]["moved"] == 0  # a quiet cluster moves nothing

    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "report",
            "--out",
            str(tmp_path),
            "--report",
            str(tmp_path / "BENCHMARKS.md"),
        ],
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "## Scale" in text
    assert "scale.png" in text


@pytest.mark.slow
def test_latency_end_to_end(tmp_path: Path) -> None:
    bench(tmp_path, "latency")
    data = result(tmp_path, "latency")
    contenders = {phase["contender"] for phase in data["phases"]}
    assert contenders == {"bridge", "fixed-250ms", "kcl-1s"}
    for phase in data["phases"]:
        assert phase["written"] > 0
        assert phase["arrived"] == phase["written"], phase  # every change reached Kafka
        latency = phase["latency"]
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
