"""A cluster of ``bridge run`` processes on 127.0.0.1 against ``bridge local``, under writes.

``cluster()`` builds one: a fresh table whose stream has 8 shards that rotate (one child per
shard, so the number of open shards stays put), a configuration with short lease timings, a
background writer and helpers to read the lease and coordination tables. Workers are separate
OS processes (``python -m bridge run``) named by ``BRIDGE_WORKER_ID``, their logs in files, and
signalled for real: SIGKILL, SIGTERM, SIGSTOP/SIGCONT.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError

from bridge.core.positions import SHARD_END
from bridge.leases.leader import LOCK_KEY
from bridge.local.endpoint import LocalEndpoint
from tests.cluster.timed_journal import Journal, JournalReader
from tests.support.worker_process import ROOT, WorkerProcess
from tests.support.workload import batches, create_table, plan_writes, write_batch

PROCESSOR = "tests.cluster.timed_journal:TimedJournalProcessor"


@dataclass(frozen=True)
class Timing:
    """Coordination and polling settings, in seconds; short so that failovers are quick."""

    lease_duration: float = 3.0
    take_interval: float = 0.3
    shard_sync_interval: float = 2.0
    poll_interval: float = 0.03
    idle_interval: float = 0.2
    max_records: int = 100
    processor_delay: float = 0.0
    """How long the journal processor takes per batch. Renewals: every lease / 3 (default)."""
    liveness: str = "lease"
    """``coordination.liveness``: each lease renewed, or the heartbeat row alone."""


# -- the writer -------------------------------------------------------------------------------


class BackgroundWriter:
    """Writes ``(key, version)`` changes at about ``rate`` a second until stopped."""

    def __init__(self, endpoint_url: str, table: str, *, rate: float, keys: int, seed: int) -> None:
        self.ddb = dynamodb(endpoint_url)
        self.table = table
        self.rate = rate
        self.plan = plan_writes(int(rate * 900), keys, seed=seed)  # far more than a test needs
        self.written: list[tuple[str, int]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def start(self) -> BackgroundWriter:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[str, int]]:
        """Stop writing; returns every change DynamoDB accepted."""
        self._stop.set()
        self._thread.join(timeout=60)
        if self.error is not None:
            raise AssertionError(f"the writer failed: {self.error!r}")
        return list(self.written)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            for batch in batches(self.plan):
                if self._stop.is_set():
                    return
                write_batch(self.ddb, self.table, batch)
                self.written += batch
                pause = started + len(self.written) / self.rate - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    return
        except BaseException as exc:  # reported by stop()
            self.error = exc


# -- the lease and coordination tables --------------------------------------------------------


def checkpoint_rank(checkpoint: str | None) -> float:
    """Where a checkpoint is in its shard: nothing read yet < a sequence number < SHARD_END."""
    if checkpoint == SHARD_END:
        return float("inf")
    if checkpoint is not None and checkpoint.isdigit():
        return float(int(checkpoint))
    return -1.0


class CheckpointWatch:
    """Samples the lease table on a thread; a checkpoint that moves backwards is recorded
    (which is what a stale owner's late write, had it landed, would look like)."""

    def __init__(self, endpoint_url: str, lease_table: str, every: float = 0.1) -> None:
        self.ddb = dynamodb(endpoint_url)
        self.lease_table = lease_table
        self.every = every
        self.samples = 0
        self.backwards: list[tuple[str, str | None, str | None]] = []
        self.history: dict[str, list[tuple[float, str | None, str | None]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint-watch", daemon=True)

    def __enter__(self) -> CheckpointWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        last: dict[str, str | None] = {}
        while not self._stop.wait(self.every):
            with contextlib.suppress(ClientError):
                now = time.monotonic()
                for item in self.ddb.scan(TableName=self.lease_table, ConsistentRead=True)["Items"]:
                    row = _lease_row(item)
                    before = last.get(row.key)
                    if checkpoint_rank(row.checkpoint) < checkpoint_rank(before):
                        self.backwards.append((row.key, before, row.checkpoint))
                    last[row.key] = row.checkpoint
                    self.history.setdefault(row.key, []).append((now, row.owner, row.checkpoint))
                self.samples += 1


@dataclass(frozen=True)
class LeaseRow:
    key: str
    owner: str | None
    counter: int
    checkpoint: str | None
    parents: frozenset[str]
    handoff_to: str | None = None
    """A worker that asked for the lease: a move decided, not yet made."""

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END


def dynamodb(endpoint_url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")


def workable(leases: list[LeaseRow]) -> list[LeaseRow]:
    """The leases that are work: unfinished, and not a child waiting for its parent (which
    nobody takes before the parent's end, as the fair share counts parent and child once)."""
    checkpoints = {lease.key: lease.checkpoint for lease in leases}
    return [
        lease
        for lease in leases
        if not lease.finished
        and all(checkpoints.get(parent, SHARD_END) == SHARD_END for parent in lease.parents)
    ]


def load_of(leases: list[LeaseRow], workers: list[str]) -> dict[str, int]:
    """Workable leases held per worker (every named worker, holding some or not)."""
    counts = Counter(lease.owner for lease in workable(leases) if lease.owner)
    return {name: counts.get(name, 0) for name in sorted(set(workers) | set(counts))}


@dataclass
class Cluster:
    local: LocalEndpoint
    directory: Path
    timing: Timing
    table: str
    ddb: Any
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    writer: BackgroundWriter | None = None

    def __post_init__(self) -> None:
        self.app = f"cluster-{self.table}"
        self.lease_table = f"{self.app}-leases"
        self.lock_table = f"{self.lease_table}-coordination"
        self.journal_path = self.directory / "journal.jsonl"
        self.config = self.directory / "bridge.yaml"
        self._journal = JournalReader(self.journal_path)
        t = self.timing
        self.config.write_text(
            f"app: {self.app}\n"
            f"source: {{table: {self.table}, endpoint_url: '{self.local.endpoint_url}',\n"
            "  region: us-east-1, aws_access_key_id: testing, aws_secret_access_key: testing}\n"
            f"coordination: {{lease_duration: {_ms(t.lease_duration)},"
            f" take_interval: {_ms(t.take_interval)},\n"
            f"  shard_sync_interval: {_ms(t.shard_sync_interval)}, max_steals_per_cycle: 1,\n"
            f"  liveness: {t.liveness}}}\n"
            f"polling: {{interval: {_ms(t.poll_interval)}, idle_interval: {_ms(t.idle_interval)},"
            f" max_records: {t.max_records}}}\n"
            f"processor: {{kind: '{PROCESSOR}',\n"
            f"  options: {{path: '{self.journal_path}', delay: {t.processor_delay}}}}}\n"
            "metrics: {port: 0}\n"
        )

    # -- processes ---------------------------------------------------------------------------

    def start_writer(self, *, rate: float = 80, keys: int = 200, seed: int = 7) -> BackgroundWriter:
        self.writer = BackgroundWriter(
            self.local.endpoint_url, self.table, rate=rate, keys=keys, seed=seed
        ).start()
        return self.writer

    def start_worker(self, name: str) -> WorkerProcess:
        worker = WorkerProcess(name, self.config, self.directory / f"{name}.log")
        self.workers[name] = worker
        return worker

    def running(self) -> list[str]:
        """Workers neither killed nor stopped by the test."""
        return [name for name, w in self.workers.items() if w.signalled is None]

    def worker_by_pid(self) -> dict[int, str]:
        return {w.pid: name for name, w in self.workers.items()}

    # -- tables ------------------------------------------------------------------------------

    def leases(self) -> list[LeaseRow]:
        rows: list[LeaseRow] = []
        kwargs: dict[str, Any] = {"TableName": self.lease_table, "ConsistentRead": True}
        while True:
            try:
                page = self.ddb.scan(**kwargs)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                    return []
                raise
            rows += [_lease_row(item) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return sorted(rows, key=lambda row: row.key)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def load(self, leases: list[LeaseRow] | None = None) -> dict[str, int]:
        return load_of(self.leases() if leases is None else leases, self.running())

    def heartbeats(self) -> dict[str, int]:
        """Each worker's heartbeat counter, from the coordination table."""
        rows = self.ddb.query(
            TableName=self.lock_table,
            KeyConditionExpression="lock_key = :w",
            ExpressionAttributeValues={":w": {"S": "workers"}},
            ConsistentRead=True,
        )["Items"]
        return {row["sort_key"]["S"]: int(row["bridgeHeartbeat"]["N"]) for row in rows}

    def leader(self) -> str | None:
        """The owner named on the leader lock (a dead leader stays named until taken over)."""
        try:
            item = self.ddb.get_item(
                TableName=self.lock_table,
                Key={"lock_key": {"S": LOCK_KEY}, "sort_key": {"S": "-"}},
                ConsistentRead=True,
            ).get("Item")
        except ClientError:
            return None
        return item["owner_name"]["S"] if item else None

    def status(self) -> dict[str, Any]:
        """``bridge status --json``, as a script would read it."""
        answer = subprocess.run(
            [sys.executable, "-m", "bridge", "status", "-c", str(self.config), "--json"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        )
        status: dict[str, Any] = orjson.loads(answer.stdout)
        return status

    def journal(self) -> Journal:
        return self._journal.read()

    # -- waiting -----------------------------------------------------------------------------

    def wait_for(
        self, condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.05
    ) -> float:
        """Poll until ``condition`` holds; returns how long it took. Fails early if a worker
        the test did not signal died."""
        started = time.monotonic()
        while not condition():
            for worker in self.workers.values():
                worker.ensure_alive()
            if self.writer is not None and self.writer.error is not None:
                raise AssertionError(f"the writer failed: {self.writer.error!r}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(poll)
        return time.monotonic() - started

    def balanced(self, names: list[str] | None = None) -> bool:
        """Every workable lease owned by a running worker, shares within 1, and no lease
        asked for (a handoff decided on an earlier reading, still to land)."""
        names = self.running() if names is None else names
        leases = self.leases()
        active = workable(leases)
        if not active or any(lease.owner not in names or lease.handoff_to for lease in active):
            return False
        counts = load_of(leases, names)
        return max(counts.values()) - min(counts.values()) <= 1

    def wait_until_settled(self, timeout: float = 30) -> float:
        """Balanced, and no lease changed owner for two take intervals: steals decided on a
        scan from before the balance have landed."""
        quiet_for = 2 * self.timing.take_interval
        last: dict[str, str | None] = {}
        since = time.monotonic()

        def settled() -> bool:
            nonlocal last, since
            owners = {lease.key: lease.owner for lease in workable(self.leases())}
            if owners != last or not self.balanced():
                last, since = owners, time.monotonic()
                return False
            return time.monotonic() - since >= quiet_for

        return self.wait_for(settled, timeout, "the cluster balanced and quiet")

    def wait_until_delivered(self, written: list[tuple[str, int]], timeout: float) -> float:
        expected = set(written)
        return self.wait_for(
            lambda: expected <= self.journal().changes(),
            timeout,
            f"all {len(expected)} written changes in the journal",
            poll=0.2,
        )

    def teardown(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(AssertionError):  # the test reported its failure
                self.writer.stop()
        for worker in self.workers.values():
            worker.stop_for_teardown()


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _lease_row(item: dict[str, Any]) -> LeaseRow:
    parents = item.get("parentShardId", {})
    return LeaseRow(
        key=item["leaseKey"]["S"],
        owner=item.get("leaseOwner", {}).get("S"),
        counter=int(item["leaseCounter"]["N"]),
        checkpoint=item.get("checkpoint", {}).get("S"),
        parents=frozenset(parents.get("SS", [])),
        handoff_to=item.get("bridgeHandoffTo", {}).get("S"),
    )


_ACTIVE: list[Cluster] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed:
        for cluster in _ACTIVE:
            for name, worker in cluster.workers.items():
                report.sections.append((f"worker {name} log (tail)", worker.log_tail()))
    return report


@pytest.fixture
def cluster(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> Iterator[Callable[..., Cluster]]:
    """``cluster(shards=8, rotate_records=150, timing=Timing())``: a stream, a table, a config."""
    made: list[Cluster] = []

    def make(
        *, shards: int = 8, rotate_records: int = 150, timing: Timing | None = None
    ) -> Cluster:
        # max_open_shards = shards: a rotation replaces a shard by one child, so there are
        # always ``shards`` unfinished leases once the children are leased.
        local = make_local_endpoint(
            shards=shards, max_open_shards=shards, rotate_records=rotate_records
        )
        ddb = dynamodb(local.endpoint_url)
        table, _ = create_table(ddb, prefix="c")
        built = Cluster(local, tmp_path, timing or Timing(), table, ddb)
        made.append(built)
        _ACTIVE.append(built)
        return built

    yield make
    for built in made:
        built.teardown()
        _ACTIVE.remove(built)
