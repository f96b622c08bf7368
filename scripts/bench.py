"""bridge's benchmarks, side by side with the alternatives, from one command.

    .venv/bin/python scripts/bench.py latency|cost|disruption|scale|throughput|snapshot [--quick]
    .venv/bin/python scripts/bench.py end-to-end [--quick]
    .venv/bin/python scripts/bench.py short-lease [--quick]
    .venv/bin/python scripts/bench.py all [--quick]      # every one, then BENCHMARKS.md
    .venv/bin/python scripts/bench.py report             # BENCHMARKS.md from bench/results

Each benchmark prints a table and writes bench/results/<name>.json and <name>.png (``--out``
elsewhere). Nothing here asserts a time: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from benchlib import machine  # noqa: E402

BENCHMARKS = (
    "latency",
    "cost",
    "disruption",
    "short-lease",
    "scale",
    "throughput",
    "end-to-end",
    "snapshot",
)


def run_one(name: str, quick: bool, out: Path, work: Path) -> None:
    import importlib

    module = importlib.import_module(f"benchlib.{name.replace('-', '_')}")
    print(f"== {name}{' (quick)' if quick else ''} ==", flush=True)
    started = time.monotonic()
    module.run(quick, out, work)
    print(f"== {name}: {time.monotonic() - started:.0f} s ==\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmark", choices=[*BENCHMARKS, "all", "report"])
    parser.add_argument("--quick", action="store_true", help="smaller and shorter (~1 min each)")
    parser.add_argument("--out", type=Path, default=machine.RESULTS, help="results directory")
    parser.add_argument(
        "--report",
        type=Path,
        default=ROOT / "BENCHMARKS.md",
        help="where 'all' and 'report' write the report",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="keep the servers' and workers' logs here (default: a temporary "
        "directory, removed afterwards)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    names = BENCHMARKS if args.benchmark == "all" else ()
    if args.benchmark in BENCHMARKS:
        names = (args.benchmark,)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as temporary:
        work = args.work or Path(temporary)
        for name in names:
            run_one(name, args.quick, args.out, work)
    if args.benchmark in ("all", "report"):
        from benchlib import report

        if args.benchmark == "report":
            report.replot(args.out)
        report.write(args.out, args.report)
        print(f"wrote {args.report}")
    if names:
        print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
