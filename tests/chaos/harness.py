"""A chaos run: ``bridge local``, a table, the load generator, one or more bridge apps of
worker processes with their sinks, the faults the scenario injects, and the checker at the end.

    run = chaos_run("kill-9", rotate_records=300)
    app = run.kafka_app(workers=3)
    run.start()                       # the generator writes from now on
    ...                               # inject faults: run.fault(...) records each window
    verdict = run.finish()            # stop writing, wait for the sinks, judge
    assert verdict.ok, verdict.explain()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from tests.chaos.checker import (
    Evidence,
    FaultWindow,
    ReplicaSampler,
    Verdict,
    judge,
    read_dead_letters,
    read_replica,
    scan_table,
)
from tests.chaos.generator import LoadGenerator
from tests.chaos.kafka_sink import KafkaSink
from tests.chaos.leases import LeaseHistory
from tests.cluster.conftest import dynamodb
from tests.kafka.topic_reader import create_topic
from tests.support.worker_process import ROOT, WorkerProcess
from tests.support.workload import create_table


@dataclass(frozen=True)
class ChaosTiming:
    """Coordination and polling settings, in seconds; short so that faults resolve quickly."""

    lease_duration: float = 3.0
    take_interval: float = 0.3
    shard_sync_interval: float = 2.0
    poll_interval: float = 0.05
    idle_interval: float = 0.3
    max_records: int = 100
    drain_timeout: float = 10.0


class ChaosWorker(WorkerProcess):
    """``bridge run`` as an OS process, with extra environment variables."""

    def __init__(self, name: str, config: Path, log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = log
        self.signalled = None
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--log-format", "json", "run", "-c", str(config)],
                cwd=ROOT,
                stdout=out,
                stderr=out,
                env={**os.environ, "BRIDGE_WORKER_ID": name, **env},
            )


@dataclass
class ChaosApp:
    """One bridge app (one lease table) and its worker processes."""

    run: ChaosRun
    name: str
    config: Path
    lease_table: str
    history: LeaseHistory
    dead_letter_path: Path
    workers: dict[str, ChaosWorker] = field(default_factory=dict)
    retired: list[ChaosWorker] = field(default_factory=list)

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> ChaosWorker:
        if name in self.workers:
            self.retired.append(self.workers[name])
        log = self.run.directory / f"{self.name}-{name}.log"
        worker = ChaosWorker(name, self.config, log, env or {})
        self.workers[name] = worker
        return worker

    def running(self) -> list[str]:
        return [n for n, w in self.workers.items() if w.signalled is None]

    def owners(self) -> dict[str, str | None]:
        return self.history.owners()

    def held_by(self, name: str) -> list[str]:
        return [shard for shard, owner in self.owners().items() if owner == name]

    def all_processes(self) -> list[ChaosWorker]:
        return [*self.retired, *self.workers.values()]

    def log_events(self, event: str) -> list[dict[str, Any]]:
        # A worker restarted under its name appends to the same log: read each file once.
        logs = {worker.log: worker for worker in self.all_processes()}
        return [
            line
            for worker in logs.values()
            for line in worker.log_events()
            if line.get("event") == event
        ]

    def taken_from_owners(self) -> set[tuple[str, str]]:
        """(shard, previous owner) of every lease taken while it had an owner (stolen, or
        expired after a kill or a freeze), from the takers' logs; a released lease has none."""
        return {
            (event["shard"], event["previous_owner"])
            for name in ("lease taken", "lease stolen")
            for event in self.log_events(name)
            if event.get("previous_owner")
        }

    def reported_lost(self) -> int:
        """What the workers said they lost to retention (their log of the loss)."""
        return sum(int(e.get("count", 0)) for e in self.log_events("records lost to retention"))

    def stop_all(self, timeout: float = 60) -> None:
        """SIGTERM every worker still running (SIGCONT first) and wait for them."""
        for worker in self.workers.values():
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGCONT)
                    worker.terminate()
        for worker in self.workers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout)

    def teardown(self) -> None:
        for worker in self.all_processes():
            worker.stop_for_teardown()


class ChaosRun:
    def __init__(
        self,
        scenario: str,
        local: LocalEndpoint,
        directory: Path,
        *,
        kafka: KafkaBroker | None = None,
        timing: ChaosTiming | None = None,
        rate: float = 60,
        keys: int = 150,
        seed: int = 11,
    ) -> None:
        self.scenario = scenario
        self.local = local
        self.directory = directory
        self.kafka = kafka
        self.timing = timing or ChaosTiming()
        self.ddb = dynamodb(local.endpoint_url)
        self.table, _ = create_table(self.ddb, prefix="chaos")
        self.generator = LoadGenerator(self.ddb, self.table, rate=rate, keys=keys, seed=seed)
        self.apps: dict[str, ChaosApp] = {}
        self.faults: list[tuple[str, FaultWindow]] = []
        """(app, window): a window explains duplicates in that app's sink only."""
        self.topic: str | None = None
        self.sink: KafkaSink | None = None
        self.replica: Path | None = None
        self.sampler: ReplicaSampler | None = None
        self.poison: list[Any] = []
        self.started = time.monotonic()
        self.verdict: Verdict | None = None
        self.phases: Path | None = None
        """Where a slowed Kafka processor marks each batch's phase (``slow_kafka``)."""

    # -- apps ---------------------------------------------------------------------------------

    def kafka_app(
        self,
        *,
        after_delivery: float = 0.0,
        before_delivery: float = 0.0,
        producer: dict[str, Any] | None = None,
        processor: dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
        name: str = "kafka",
    ) -> ChaosApp:
        """An app publishing to a fresh 3-partition topic (read by the checker)."""
        assert self.kafka is not None, "this run has no Kafka broker"
        self.topic = create_topic(self.kafka.bootstrap_servers, partitions=3, name=self.table)
        options: dict[str, Any] = {
            "bootstrap_servers": self.kafka.bootstrap_servers,
            "topic": self.topic,
            "producer": producer or {},
        }
        kind = "kafka"
        if after_delivery or before_delivery:
            kind = "tests.chaos.slow_kafka:SlowKafkaFactory"
            self.phases = self.directory / "phases"
            self.phases.mkdir(exist_ok=True)
            options |= {
                "after_delivery": after_delivery,
                "before_delivery": before_delivery,
                "phase_dir": str(self.phases),
            }
        app = self._app(name, {"kind": kind, "options": options, **(processor or {})}, source)
        self.sink = KafkaSink(self.kafka.bootstrap_servers, self.topic)
        return app

    def sqlite_app(self, name: str = "sqlite") -> ChaosApp:
        """An app keeping a SQLite replica (complete with one worker), sampled as it goes."""
        self.replica = self.directory / "replica.db"
        app = self._app(name, {"kind": "sqlite", "options": {"path": str(self.replica)}})
        self.sampler = ReplicaSampler(self.replica, self.table)
        return app

    def _app(
        self, name: str, processor: dict[str, Any], source: dict[str, Any] | None = None
    ) -> ChaosApp:
        t = self.timing
        app_name = f"chaos-{name}-{self.table}"
        dead_letter = self.directory / f"{name}-dead-letter.jsonl"
        config = {
            "app": app_name,
            "source": {
                "table": self.table,
                "endpoint_url": self.local.endpoint_url,
                "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing",
                **(source or {}),
            },
            "coordination": {
                "lease_duration": _ms(t.lease_duration),
                "take_interval": _ms(t.take_interval),
                "shard_sync_interval": _ms(t.shard_sync_interval),
                "drain_timeout": _ms(t.drain_timeout),
                "max_steals_per_cycle": 1,
            },
            "polling": {
                "interval": _ms(t.poll_interval),
                "idle_interval": _ms(t.idle_interval),
                "max_records": t.max_records,
            },
            "processor": {"dead_letter_path": str(dead_letter), **processor},
            "metrics": {"port": 0},
        }
        path = self.directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        lease_table = f"{app_name}-leases"
        history = LeaseHistory(self.ddb, lease_table)
        app = ChaosApp(self, name, path, lease_table, history, dead_letter)
        self.apps[name] = app
        return app

    # -- running ------------------------------------------------------------------------------

    def start(self, *, warm: int = 100, within: float = 60) -> None:
        """Start sampling and writing; returns once every app has delivered ``warm`` changes."""
        for app in self.apps.values():
            app.history.start()
        if self.sampler is not None:
            self.sampler.__enter__()
        self.started = time.monotonic()
        self.generator.start()
        self.wait_for(lambda: self.delivered() >= warm, within, f"{warm} changes delivered")

    def delivered(self) -> int:
        """How many changes the slowest sink shows (distinct changes, not messages)."""
        counts = []
        if self.sink is not None:
            counts.append(len({d.change for d in self.sink.catch_up()}))
        if self.replica is not None:
            counts.append(len(read_replica(self.replica, self.table)))
        return min(counts) if counts else 0

    def wait_for(
        self, condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.1
    ) -> float:
        """Poll until ``condition`` holds; fails early if a worker nobody signalled died."""
        started = time.monotonic()
        while not condition():
            for app in self.apps.values():
                for worker in app.workers.values():
                    worker.ensure_alive()
            if self.generator.error is not None:
                raise AssertionError(f"the load generator failed: {self.generator.error!r}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(poll)
        return time.monotonic() - started

    def phases_of(self, worker: ChaosWorker) -> dict[str, set[str]]:
        """Each phase (``in-hand``, ``sent``) and the shards of ``worker`` in it right now."""
        assert self.phases is not None, "the app's processor marks no phases"
        found: dict[str, set[str]] = {}
        for mark in self.phases.glob(f"{worker.pid}-*"):
            shard, _, phase = mark.name.partition("-")[2].rpartition(".")
            found.setdefault(phase, set()).add(shard)
        return found

    def hold(self, seconds: float, what: str) -> None:
        """Let ``seconds`` pass (a schedule, not a synchronisation), watching the workers."""
        until = time.monotonic() + seconds
        self.wait_for(lambda: time.monotonic() >= until, seconds + 10, what)

    def wait_for_writes(self, count: int, within: float = 120) -> None:
        """Let the generator make ``count`` more changes."""
        target = self.generator.written + count
        self.wait_for(lambda: self.generator.written >= target, within, f"{count} more writes")

    @contextlib.contextmanager
    def fault(
        self, kind: str, target: str, *, app: str = "kafka", linger: float | None = None
    ) -> Iterator[None]:
        """Records the window of a fault injected inside the block: from its start to the end
        of the block plus ``linger`` (default: a lease duration, for a stale owner's last
        batch), with the app's checkpoints when it hit."""
        history = self.apps[app].history if app in self.apps else None
        with contextlib.suppress(Exception):
            if history is not None:
                history.sample()  # the checkpoints as they are right now
        start = time.time()
        checkpoints = history.checkpoints_at(start) if history is not None else {}
        try:
            yield
        finally:
            linger = self.timing.lease_duration if linger is None else linger
            window = FaultWindow(kind, target, start, time.time() + linger, checkpoints)
            self.faults.append((app, window))

    # -- the end ------------------------------------------------------------------------------

    def finish(self, *, within: float = 120, expect_loss: bool = False) -> Verdict:
        """Stop writing, wait for the sinks to hold every change (or give up after ``within``:
        the checker then counts what is missing), stop the workers, judge."""
        reference = self.generator.stop()
        expected = set(reference) - set(self.poison)
        deadline = time.monotonic() + within

        def complete() -> bool:
            if self.sink is not None and not expected <= {d.change for d in self.sink.catch_up()}:
                return False
            return self.replica is None or read_replica(self.replica, self.table) == scan_table(
                self.ddb, self.table
            )

        while not (expect_loss or complete()) and time.monotonic() < deadline:
            time.sleep(0.3)
        if expect_loss:  # nothing completes: let the workers reach the stream's tip instead
            self.wait_until_idle(within)
        for app in self.apps.values():
            app.stop_all()
            app.history.stop()
        if self.sampler is not None:
            self.sampler.stop()
        grace = self.timing.lease_duration + 1
        faults = [window for app, window in self.faults if app == "kafka"]
        if "kafka" in self.apps:
            kafka = self.apps["kafka"]
            faults += kafka.history.handoffs(grace, kafka.taken_from_owners())
        evidence = Evidence(
            scenario=self.scenario,
            reference=reference,
            deliveries=self.sink.catch_up() if self.sink is not None else None,
            replica=read_replica(self.replica, self.table) if self.replica else None,
            table=scan_table(self.ddb, self.table) if self.replica else None,
            backwards=self.sampler.backwards if self.sampler else (),
            faults=faults,
            poison=self.poison,
            dead_letters=[
                c for a in self.apps.values() for c in read_dead_letters(a.dead_letter_path)
            ],
            reported_lost=sum(a.reported_lost() for a in self.apps.values()),
        )
        self.verdict = judge(evidence).with_duration(time.monotonic() - self.started)
        return self.verdict

    def wait_until_idle(self, within: float) -> None:
        """Until the sinks stop growing for a few seconds (after losses nothing completes)."""
        quiet = 3 * self.timing.idle_interval + 2
        last, since = -1, time.monotonic()

        def idle() -> bool:
            nonlocal last, since
            now = self.delivered()
            if now != last:
                last, since = now, time.monotonic()
            return time.monotonic() - since >= quiet

        self.wait_for(idle, within, "the sinks to stop growing", poll=0.3)

    def teardown(self) -> None:
        with contextlib.suppress(AssertionError):
            self.generator.stop()
        for app in self.apps.values():
            app.teardown()
            app.history.stop()
        if self.sampler is not None:
            self.sampler.stop()
        if self.sink is not None:
            self.sink.close()


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def write_report_row(verdict: Verdict, path: Path) -> None:
    with path.open("ab") as out:
        out.write(orjson.dumps(verdict.as_json()) + b"\n")
