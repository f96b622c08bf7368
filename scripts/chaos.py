"""The chaos suite's full tier and the random soak, from one command, ending with the report.

    .venv/bin/python scripts/chaos.py                         # every scenario, a 10-minute soak
    .venv/bin/python scripts/chaos.py --duration 30m          # a longer soak
    .venv/bin/python scripts/chaos.py --scenario soak --duration 2m
    .venv/bin/python scripts/chaos.py --scenario kill         # scenarios matching pytest -k

Each scenario is a test in tests/chaos (``pytest --full``); each writes its verdict to a
report file, printed here as one table: scenario, sinks, writes, lost, duplicates (and how
many no fault window explains), order violations, replica differences, versions seen going
backwards, verdict, seconds. Exit status: pytest's (0 when every verdict passed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import orjson  # noqa: E402

from bridge.config import parse_duration  # noqa: E402
from tests.chaos.checker import report_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", default="10m", help="how long the soak runs (e.g. 90s, 10m)")
    parser.add_argument("--scenario", help="only the scenarios matching this pytest -k expression")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest (after --)")
    args = parser.parse_args()
    seconds = parse_duration(args.duration).total_seconds()
    with tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
        report = Path(scratch) / "report.jsonl"
        command = [
            sys.executable, "-m", "pytest", "tests/chaos", "--full", "-p", "no:cacheprovider",
            "-q", "-rA", *(["-k", args.scenario] if args.scenario else []), *args.pytest_args,
        ]  # fmt: skip
        env = {**os.environ, "CHAOS_SOAK_SECONDS": str(seconds), "CHAOS_REPORT": str(report)}
        print(f"$ {' '.join(command)}  (soak: {seconds:.0f}s)", flush=True)
        status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        rows = (
            [orjson.loads(line) for line in report.read_bytes().splitlines()]
            if report.exists()
            else []
        )
    print("\nchaos report\n")
    print(report_table(rows) if rows else "(no scenario reached its verdict)")
    return status


if __name__ == "__main__":
    sys.exit(main())
