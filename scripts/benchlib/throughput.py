"""Per-worker ceilings from the component benchmarks, run as they are and collected here.

``scripts/bench_decode.py`` (GetRecords decoding: bridge's fast path vs botocore),
``scripts/bench_kafka.py`` (bridge's KafkaProcessor vs a raw confluent-kafka producer) and
``scripts/bench_sqlite.py`` (bridge's SqliteProcessor vs a raw executemany upsert) each run in
their own process with smaller settings under ``--quick``; their printed lines are parsed (and
kept verbatim in the JSON), so what they print stays the one source of their numbers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import machine, plots

NAME = "throughput"
SCRIPTS = Path(__file__).resolve().parents[1]


def commands(quick: bool, work: Path) -> dict[str, list[str]]:
    decode_json = work / "decode.json"
    if quick:
        return {
            "decode": [
                "bench_decode.py",
                "--records",
                "500",
                "--bodies",
                "2",
                "--rounds",
                "3",
                "--json",
                str(decode_json),
            ],
            "kafka": ["bench_kafka.py", "--records", "10000", "--rounds", "1"],
            "sqlite": ["bench_sqlite.py", "--records", "10000", "--rounds", "2"],
        }
    return {
        "decode": ["bench_decode.py", "--json", str(decode_json)],
        "kafka": ["bench_kafka.py"],
        "sqlite": ["bench_sqlite.py"],
    }


def _number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1).replace(",", "")) if match else None


def parse(name: str, stdout: str, work: Path) -> dict[str, Any]:
    if name == "decode":
        data = json.loads((work / "decode.json").read_text())
        rates = data["records_per_second"]
        return {
            "unit": "records/s",
            "bridge": rates.get("fast + images"),
            "baseline": rates.get("botocore + images"),
            "baseline_name": "botocore's parser + TypeDeserializer",
            "ratio": data["ratios"].get("fast + images / botocore + images"),
            "all": rates,
        }
    if name == "kafka":
        return {
            "unit": "records/s",
            "bridge": _number(r"bridge KafkaProcessor\s*:\s*([\d,]+)", stdout),
            "baseline": _number(r"raw confluent-kafka producer\s*:\s*([\d,]+)", stdout),
            "baseline_name": "raw confluent-kafka producer, same settings",
            "ratio": _number(r"ratio bridge / raw\s*:\s*([\d.]+)", stdout),
        }
    return {
        "unit": "changes/s",
        "bridge": _number(r"bridge SqliteProcessor \(from records\)\s*([\d,]+)", stdout),
        "baseline": _number(r"raw executemany upsert \(tuples ready\)\s*([\d,]+)", stdout),
        "baseline_name": "raw sqlite3 executemany upsert, tuples ready",
        "ratio": _number(r"ratio bridge / raw\s*([\d.]+)", stdout),
    }


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    work = work / NAME
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    components: dict[str, Any] = {}
    for name, argv in commands(quick, work).items():
        t = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(SCRIPTS / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        entry: dict[str, Any] = {"command": " ".join(["scripts/" + argv[0], *argv[1:]])}
        entry["command"] = entry["command"].replace(str(work), "<tmp>")
        if done.returncode == 0:
            try:
                entry.update(parse(name, done.stdout, work))
            except (ValueError, KeyError, OSError) as exc:
                entry["error"] = f"could not read its output: {exc!r}"
        else:
            entry["error"] = f"exit {done.returncode}: {done.stderr[-2000:]}"
        entry["stdout"] = done.stdout.splitlines()
        entry["seconds"] = round(time.monotonic() - t, 1)
        components[name] = entry
        print(f"  {name}: {entry.get('ratio')} (bridge / baseline) in {entry['seconds']} s")
    result = {
        "quick": quick,
        "components": components,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine.machine_info(),
    }
    print_table(result)
    plot(result, out / f"{NAME}.png")
    machine.save(out, NAME, result)
    return result


def print_table(result: dict[str, Any]) -> None:
    print(f"{'component':<10}{'bridge':>14}{'baseline':>14}{'ratio':>8}  baseline")
    for name, c in result["components"].items():
        if "error" in c:
            print(f"{name:<10}  failed: {c['error'][:200]}")
            continue
        print(
            f"{name:<10}{c['bridge'] or 0:>14,.0f}{c['baseline'] or 0:>14,.0f}"
            f"{c['ratio'] or 0:>8.2f}  {c['baseline_name']} ({c['unit']})"
        )


def plot(result: dict[str, Any], path: Path) -> None:
    ok = {n: c for n, c in result["components"].items() if "error" not in c and c.get("bridge")}
    fig, axes = plots.figure(columns=max(1, len(ok)), width=3.4, height=3.4)
    for ax, (name, c) in zip(axes[0], ok.items(), strict=False):
        ax.bar(
            ["bridge", "baseline"],
            [c["bridge"], c["baseline"] or 0],
            color=[plots.COLOURS["bridge"], "#999999"],
        )
        ax.set_title(f"{name}: x{c['ratio']}", fontsize=9)
        ax.set_ylabel(c["unit"])
        ax.grid(axis="y", alpha=0.3)
    plots.save(fig, path, "Per-worker ceilings (component benchmarks)")
