"""The lease table's history, sampled on a thread: owners and checkpoints over (wall) time.

The checker uses it for two things: each shard's durable checkpoint when a fault hit (a
checkpoint is durable once it is in the lease table), and the handoffs (a lease going from
one owner straight to another: a steal, or a take after expiry) that leave the previous
owner's batch in hand to be delivered twice.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import threading
import time
from collections.abc import Set
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tests.chaos.checker import FaultWindow
from tests.cluster.conftest import checkpoint_rank


@dataclass(frozen=True)
class Sample:
    at: float
    owner: str | None
    counter: int
    checkpoint: str | None


class LeaseHistory:
    """Samples ``lease_table`` every ``every`` seconds; keeps each row's changes."""

    def __init__(self, ddb: Any, lease_table: str, every: float = 0.1) -> None:
        self.ddb = ddb
        self.lease_table = lease_table
        self.every = every
        self.samples = 0
        self.rows: dict[str, list[Sample]] = {}
        self.backwards: list[tuple[str, str | None, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-history", daemon=True)

    def start(self) -> LeaseHistory:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def sample(self) -> None:
        """One scan of the lease table, now."""
        at = time.time()
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.lease_table, "ConsistentRead": True}
        while True:
            page = self.ddb.scan(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        with self._lock:
            for item in items:
                key = item["leaseKey"]["S"]
                row = Sample(
                    at,
                    item.get("leaseOwner", {}).get("S"),
                    int(item["leaseCounter"]["N"]),
                    item.get("checkpoint", {}).get("S"),
                )
                history = self.rows.setdefault(key, [])
                last = history[-1] if history else None
                if last is not None and checkpoint_rank(row.checkpoint) < checkpoint_rank(
                    last.checkpoint
                ):
                    self.backwards.append((key, last.checkpoint, row.checkpoint))
                if last is None or (last.owner, last.counter, last.checkpoint) != (
                    row.owner,
                    row.counter,
                    row.checkpoint,
                ):
                    history.append(row)
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(ClientError):
                self.sample()

    # -- reading ------------------------------------------------------------------------------

    def checkpoints_at(self, at: float) -> dict[str, str | None]:
        """Each shard's checkpoint in the last sample taken at or before ``at``."""
        out: dict[str, str | None] = {}
        with self._lock:
            for key, history in self.rows.items():
                index = bisect.bisect_right([s.at for s in history], at)
                if index:
                    out[key] = history[index - 1].checkpoint
        return out

    def handoffs(self, grace: float, taken_from: Set[tuple[str, str]]) -> list[FaultWindow]:
        """A window per lease taken from a live or expired owner (stolen, or taken after a
        kill or a freeze): from the last sample the old owner held it to ``grace`` seconds
        after the new one had it. ``taken_from`` holds (shard, previous owner) of every such
        take, from the takers' logs: a lease released and then taken is no fault, though the
        samples may have missed the moment it had no owner. The window covers its own shard
        only."""
        windows = []
        with self._lock:
            rows = {key: list(history) for key, history in self.rows.items()}
        for key, history in rows.items():
            for before, after in itertools.pairwise(history):
                if (
                    before.owner
                    and after.owner
                    and before.owner != after.owner
                    and (key, before.owner) in taken_from
                ):
                    windows.append(
                        FaultWindow(
                            "handoff",
                            f"{before.owner}->{after.owner}",
                            before.at,
                            after.at + grace,
                            {key: before.checkpoint},
                            only_these_shards=True,
                        )
                    )
        return windows

    def owners(self) -> dict[str, str | None]:
        with self._lock:
            return {key: history[-1].owner for key, history in self.rows.items() if history}
