"""Scenario 12: the random soak. A killer sends SIGKILL, SIGTERM or SIGSTOP (then SIGCONT) to
a random worker on a schedule, for ``CHAOS_SOAK_SECONDS`` (default 60), and restarts what it
stopped. Two apps read the stream: three workers publishing to Kafka, and one worker keeping
a SQLite replica (a complete one: it owns every shard), killed and restarted like the others.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.chaos.conftest import soak_seconds
from tests.chaos.harness import ChaosApp, ChaosRun


@dataclass
class Killer:
    """Picks a victim and a signal every ``every`` seconds (jittered)."""

    run: ChaosRun
    rng: random.Random
    every: float = 4.0
    actions: int = 0

    def strike(self) -> None:
        app = self.run.apps[self.rng.choice(sorted(self.run.apps))]
        name = self.rng.choice(sorted(app.workers))
        action = self.rng.choice(["SIGKILL", "SIGTERM", "SIGSTOP"])
        self.actions += 1
        if action == "SIGSTOP":
            self._pause(app, name)
        else:
            self._stop(app, name, action)

    def _pause(self, app: ChaosApp, name: str) -> None:
        worker = app.workers[name]
        pause = self.rng.uniform(0.5, 2.5) * self.run.timing.lease_duration
        with self.run.fault("SIGSTOP", f"{app.name}/{name}", app=app.name):
            worker.pause()
            self.run.hold(pause, f"the pause of {name}")
            worker.resume()

    def _stop(self, app: ChaosApp, name: str, action: str) -> None:
        worker = app.workers[name]
        with self.run.fault(action, f"{app.name}/{name}", app=app.name):
            if action == "SIGKILL":
                worker.kill()
            else:
                worker.terminate()
                worker.wait(60)
        self.run.hold(self.rng.uniform(0, 2) * self.run.timing.lease_duration, "downtime")
        app.start_worker(name)


@pytest.mark.slow
@pytest.mark.timeout(soak_seconds() + 900)
def test_random_soak(chaos: Callable[..., ChaosRun]) -> None:
    duration = soak_seconds()
    run = chaos(f"soak {duration:.0f}s (kafka+sqlite)", rotate_records=500, rate=40)
    kafka = run.kafka_app(after_delivery=0.1)
    sqlite = run.sqlite_app()
    for name in ("w1", "w2", "w3"):
        kafka.start_worker(name)
    sqlite.start_worker("s1")
    run.start()
    killer = Killer(run, random.Random(20240611))
    ends = time.monotonic() + duration
    while time.monotonic() < ends:
        run.hold(killer.rng.uniform(0.5, 1.5) * killer.every, "the next strike")
        killer.strike()
    verdict = run.finish(within=180)
    print(f"\n{killer.actions} strikes\n" + verdict.explain())
    assert verdict.ok, verdict.explain()
