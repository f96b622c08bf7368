"""An in-memory lease table with the same conditional semantics as ``DynamoLeaseStore``.

For tests of workers and of user code that need a lease table but not DynamoDB. Faults are
injected by name and call number, the way KCL's tests do: ``store.fail("renew", on_call=3)``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from bridge.core.leasing import Lease
from bridge.core.positions import SHARD_END, TRIM_HORIZON
from bridge.errors import LeaseLostError
from bridge.leases.store import LeaseConflictError


class MemoryLeaseStore:
    def __init__(self) -> None:
        self.rows: dict[str, Lease] = {}
        self.calls: Counter[str] = Counter()
        self._faults: dict[tuple[str, int], BaseException] = {}

    def fail(self, method: str, *, on_call: int, error: BaseException | None = None) -> None:
        """Make the ``on_call``-th call (1-based, counting from now) of ``method`` raise."""
        self._faults[(method, self.calls[method] + on_call)] = error or ConnectionError(
            f"injected failure of {method}"
        )

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        fault = self._faults.pop((method, self.calls[method]), None)
        if fault is not None:
            raise fault

    async def ensure_table(self) -> None:
        self._enter("ensure_table")

    async def list_leases(self) -> list[Lease]:
        self._enter("list_leases")
        return list(self.rows.values())

    async def create_lease(
        self, key: str, parents: frozenset[str], checkpoint: str = TRIM_HORIZON
    ) -> bool:
        self._enter("create_lease")
        if key in self.rows:
            return False
        self.rows[key] = Lease(key, checkpoint=checkpoint, parents=parents)
        return True

    async def add_children(self, key: str, children: frozenset[str]) -> None:
        self._enter("add_children")
        row = self._row(key, LeaseConflictError)
        self.rows[key] = replace(row, children=row.children | children)

    async def add_parents(self, key: str, parents: frozenset[str]) -> None:
        self._enter("add_parents")
        row = self._row(key, LeaseConflictError)
        self.rows[key] = replace(row, parents=row.parents | parents)

    async def want_snapshot(self, lease: Lease, at_ms: int) -> Lease:
        self._enter("want_snapshot")
        row = self._owned(lease)
        self.rows[lease.key] = replace(row, snapshot_wanted_ms=at_ms)
        return replace(lease, snapshot_wanted_ms=at_ms)

    async def pause(self, lease: Lease, cutoff_ms: int) -> Lease:
        self._enter("pause")
        row = self._owned(lease)
        self.rows[lease.key] = replace(row, paused_for_ms=cutoff_ms)
        return replace(lease, paused_for_ms=cutoff_ms)

    async def take(self, lease: Lease, owner: str) -> Lease:
        self._enter("take")
        row = self._row(lease.key, LeaseConflictError)
        if row.counter != lease.counter or row.owner != lease.owner:
            raise LeaseConflictError(f"lease {lease.key} changed under us")
        switch = 0 if row.owner == owner else 1
        taken = replace(
            row,
            owner=owner,
            counter=row.counter + 1,
            owner_switches=row.owner_switches + switch,
            handoff_to=None,
        )
        self.rows[lease.key] = taken
        return taken

    async def renew(self, lease: Lease) -> Lease:
        self._enter("renew")
        row = self._owned(lease)
        self.rows[lease.key] = replace(row, counter=row.counter + 1, lag=lease.lag or row.lag)
        return replace(lease, counter=row.counter + 1, handoff_to=row.handoff_to)

    async def get_leases(self, keys: list[str]) -> list[Lease]:
        self._enter("get_leases")
        return [self.rows[key] for key in keys if key in self.rows]

    async def request_handoff(self, lease: Lease, to: str) -> Lease:
        self._enter("request_handoff")
        row = self._row(lease.key, LeaseConflictError)
        if row.owner is None or row.owner != lease.owner:
            raise LeaseConflictError(f"lease {lease.key} changed owner")
        self.rows[lease.key] = replace(row, handoff_to=to)
        return replace(lease, handoff_to=to)

    async def withdraw_request(self, key: str, asker: str) -> None:
        self._enter("withdraw_request")
        row = self.rows.get(key)
        if row is not None and row.handoff_to == asker:
            self.rows[key] = replace(row, handoff_to=None)

    async def hand_over(self, lease: Lease, to: str) -> Lease:
        self._enter("hand_over")
        row = self._row(lease.key, LeaseConflictError)
        if (row.owner, row.counter, row.handoff_to) != (lease.owner, lease.counter, to):
            raise LeaseConflictError(f"lease {lease.key} changed, or {to} no longer asks")
        given = replace(
            row,
            owner=to,
            counter=row.counter + 1,
            owner_switches=row.owner_switches + 1,
            handoff_to=None,
        )
        self.rows[lease.key] = given
        return given

    async def checkpoint(self, lease: Lease, checkpoint: str) -> Lease:
        self._enter("checkpoint")
        row = self._owned(lease)
        self.rows[lease.key] = replace(
            row, checkpoint=checkpoint, owner_switches=0, lag=lease.lag or row.lag
        )
        return replace(lease, checkpoint=checkpoint, owner_switches=0)

    async def release(self, lease: Lease) -> None:
        self._enter("release")
        row = self._owned(lease)
        self.rows[lease.key] = replace(row, owner=None, counter=row.counter + 1)

    async def delete(self, key: str) -> None:
        self._enter("delete")
        row = self.rows.get(key)
        if row is not None and row.checkpoint == SHARD_END:
            del self.rows[key]

    async def retire(self, lease: Lease) -> None:
        self._enter("retire")
        row = self.rows.get(lease.key)
        if row is not None and row.counter == lease.counter:
            del self.rows[lease.key]

    def _row(self, key: str, missing: type[Exception]) -> Lease:
        row = self.rows.get(key)
        if row is None:
            raise missing(f"lease {key} does not exist")
        return row

    def _owned(self, lease: Lease) -> Lease:
        row = self._row(lease.key, LeaseLostError)
        if row.counter != lease.counter or row.owner is None or row.owner != lease.owner:
            raise LeaseLostError(f"lease {lease.key} is no longer ours (counter {lease.counter})")
        return row
