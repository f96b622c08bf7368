"""Scenario 4: two workers' wall clocks off by +5 and -5 minutes (monotonic clocks real).

Lease expiry is judged on each observer's monotonic clock, never by comparing wall clocks:
once the cluster settled, no lease may change hands (no early steals), and no shard may have
two owners; the checker's verdict must pass as in any run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosApp, ChaosRun
from tests.chaos.scenarios import all_holding, check

SKEW = Path(__file__).parent / "clock_skew"
ROOT = Path(__file__).resolve().parents[2]


def expiry_takes(app: ChaosApp) -> list[dict[str, object]]:
    """Leases taken from an owner judged expired (a balancing steal is "lease stolen")."""
    return [e for e in app.log_events("lease taken") if e.get("previous_owner")]


def skewed(offset: float) -> dict[str, str]:
    return {"PYTHONPATH": f"{SKEW}:{ROOT}", "CHAOS_CLOCK_OFFSET": str(offset)}


def test_the_skew_shim_moves_the_wall_clock_only() -> None:
    probe = (
        "import time, datetime; print(time.time() - time.monotonic(),"
        " datetime.datetime.now().timestamp() - time.monotonic())"
    )
    real = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    shifted = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**skewed(300), "PATH": "/usr/bin:/bin"},
    )
    (a, b), (c, d) = (map(float, r.stdout.split()) for r in (real, shifted))
    assert 299 < c - a < 301 and 299 < d - b < 301


@pytest.mark.slow
def test_workers_with_skewed_wall_clocks(chaos: Callable[..., ChaosRun]) -> None:
    # 7 shards over 3 workers: two of them sit a lease below the share, so their take cycles
    # keep weighing every lease's expiry (with 6, a worker at its share skips that, and an
    # expiry judged by a skewed wall clock would never show).
    run = chaos("wall clocks +/-5 min (kafka)", rotate_records=0, shards=7)
    app = run.kafka_app()
    app.start_worker("w1")
    app.start_worker("ahead", env=skewed(+300))
    app.start_worker("behind", env=skewed(-300))
    run.start()
    all_holding(run, app)
    stable_since, last = time.monotonic(), app.owners()

    def balanced_and_quiet() -> bool:  # balancing steals are over
        nonlocal stable_since, last
        now = app.owners()
        if now != last:
            stable_since, last = time.monotonic(), now
        return time.monotonic() - stable_since >= 2 * run.timing.lease_duration

    run.wait_for(balanced_and_quiet, 90, "no lease changing hands for two lease durations")
    settled = app.owners()
    takes_before = len(expiry_takes(app))
    run.hold(4 * run.timing.lease_duration, "four lease durations under load")
    moved = {k: (settled[k], o) for k, o in app.owners().items() if settled.get(k) != o}
    assert not moved, f"leases changed hands between live workers: {moved}"
    early = expiry_takes(app)[takes_before:]
    assert not early, f"leases of live workers taken as expired: {early[:3]}"
    check(run)
