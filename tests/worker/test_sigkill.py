"""``bridge run`` killed with SIGKILL twice while 20,000 writes stream in, and restarted.

At-least-once, precisely: nothing is lost, each key's changes first appear in write order, and
a change is handed over again only if it came after the checkpoint its shard had when the
worker died. Each run is a new OS process with a new worker id, so the restarted worker must
wait for the dead one's leases to expire (a short ``lease_duration``) and take them over.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.core.positions import SHARD_END, is_sequence_number
from bridge.local.endpoint import LocalEndpoint
from tests.support.journal import Entry, count_lines, read_journal
from tests.support.worker_process import WorkerProcess
from tests.support.workload import Writer, create_table, expected_versions, plan_writes
from tests.worker.conftest import dynamodb

WRITES = 20_000
KEYS = 1_000


def lease_checkpoints(ddb: object, lease_table: str) -> dict[str, str | None]:
    items = ddb.scan(TableName=lease_table, ConsistentRead=True)["Items"]  # type: ignore[attr-defined]
    return {item["leaseKey"]["S"]: item.get("checkpoint", {}).get("S") for item in items}


def lease_owners(ddb: object, lease_table: str) -> dict[str, str | None]:
    items = ddb.scan(TableName=lease_table, ConsistentRead=True)["Items"]  # type: ignore[attr-defined]
    return {item["leaseKey"]["S"]: item.get("leaseOwner", {}).get("S") for item in items}


@pytest.fixture
def background_writes() -> Iterator[Callable[[Writer], threading.Thread]]:
    threads: list[threading.Thread] = []

    def start(writer: Writer) -> threading.Thread:
        thread = threading.Thread(target=writer.write, name="writer", daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [1, 5])  # processor.parallelism: lanes in flight when killed
def test_sigkill_twice_loses_nothing_and_replays_only_after_the_checkpoint(
    make_local_endpoint: Callable[..., LocalEndpoint],
    background_writes: Callable[[Writer], threading.Thread],
    tmp_path: Path,
    lanes: int,
) -> None:
    seed = random.randrange(1 << 30)
    print(f"\nkill points seed: {seed}")
    rng = random.Random(seed)
    local = make_local_endpoint(shards=4, rotate_records=500)
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb)
    app = f"kill-{table}"
    journal = tmp_path / "journal.jsonl"
    config = tmp_path / "bridge.yaml"
    kind = "tests.support.journal:JournalProcessor"
    config.write_text(
        f"app: {app}\n"
        f"source: {{table: {table}, endpoint_url: '{local.endpoint_url}', region: us-east-1,\n"
        "  aws_access_key_id: testing, aws_secret_access_key: testing}\n"
        "coordination: {lease_duration: 3s, take_interval: 200ms, shard_sync_interval: 5s}\n"
        "polling: {interval: 20ms, idle_interval: 200ms}\n"
        f"processor: {{kind: '{kind}', options: {{path: '{journal}'}}, parallelism: {lanes}}}\n"
        "metrics: {port: 0}\n"
    )
    plan = plan_writes(WRITES, KEYS, seed=seed)
    writer = Writer(ddb, table, plan)
    writing = background_writes(writer)

    worker = WorkerProcess(None, config, tmp_path / "worker.log")
    # Journal lengths at which to kill: one in each half of the run, at random.
    kill_points = [rng.randint(2_000, 8_000), rng.randint(11_000, 17_000)]
    runs: list[tuple[int, dict[str, str | None]]] = []  # (pid killed, checkpoints when it died)
    for point in kill_points:
        worker.wait_for(lambda p=point: count_lines(journal) >= p, 120, f"{point} journal lines")
        worker.kill()
        runs.append((worker.pid, lease_checkpoints(ddb, f"{app}-leases")))
        worker = WorkerProcess(None, config, tmp_path / "worker.log")

    def all_seen() -> bool:
        return len({(e.key, e.version) for e in read_journal(journal)}) >= WRITES

    worker.wait_for(all_seen, 180, "every write in the journal")
    writing.join(timeout=60)
    worker.terminate()
    assert worker.wait(60) == 0, worker.log_tail()

    entries = read_journal(journal)
    assert len(writer.written) == WRITES
    # Nothing lost: every write is in the journal; first appearances keep each key's order.
    first_seen: dict[tuple[str, int], Entry] = {}
    for entry in entries:
        first_seen.setdefault((entry.key, entry.version), entry)
    assert len(first_seen) == WRITES
    by_key: dict[str, list[int]] = {}
    for key, version in first_seen:
        by_key.setdefault(key, []).append(version)
    assert by_key == expected_versions(plan)

    # Duplicates only after the checkpoint their shard had when the previous run died.
    pids = [pid for pid, _ in runs] + [worker.pid]
    assert {entry.pid for entry in entries} <= set(pids)
    duplicates = 0
    delivered: set[tuple[str, str]] = set()
    for generation, pid in enumerate(pids):
        mine = [e for e in entries if e.pid == pid]
        per_run = [(e.shard, e.seq) for e in mine]
        assert len(per_run) == len(set(per_run)), f"run {generation} saw a record twice"
        checkpoints = runs[generation - 1][1] if generation else {}
        for entry in mine:
            if (entry.shard, entry.seq) not in delivered:
                continue
            duplicates += 1
            checkpoint = checkpoints.get(entry.shard)
            assert checkpoint != SHARD_END, f"{entry} replayed from a finished shard"
            if is_sequence_number(checkpoint):
                assert int(entry.seq) > int(checkpoint), (
                    f"{entry} replayed from before {checkpoint}"
                )
        delivered.update(per_run)
    print(f"{len(entries)} journal lines, {duplicates} duplicates after {len(runs)} kills")

    # The last run released everything it held. A killed run may still be named on a
    # finished lease (killed between checkpointing SHARD_END and releasing it): nobody needs
    # that lease again, so nobody takes it over; the shard syncer deletes it once the shard
    # leaves the stream.
    owners = lease_owners(ddb, f"{app}-leases")
    checkpoints = lease_checkpoints(ddb, f"{app}-leases")
    held = {key: (owner, checkpoints[key]) for key, owner in owners.items() if owner is not None}
    killed = {f"{socket.gethostname()}-{pid}" for pid, _ in runs}
    assert owners
    assert all(owner in killed and checkpoint == SHARD_END for owner, checkpoint in held.values())
