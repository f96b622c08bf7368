"""What a cluster's coordination costs in DynamoDB capacity units, for the lease simulation.

Rows are sized as bridge writes them (a lease row in mid-life, a heartbeat row, a worker's
orders row, the leader's lock) by DynamoDB's rules (``bridge.core.capacity``), so a Scan of
1,000 leases costs what DynamoDB would bill for it, not one request. The simulation calls the
bill once per take cycle for what each worker did in it; the timing turns a cycle's calls
into rates (renewals every renew interval, the lock's heartbeat every tenth of a lease, the
asker's reads every 50 ms while it waits for a handoff).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from bridge.core.capacity import Item, item_size, read_units, write_units

_SHARD = "shardId-00000001733450000000-1a2b3c4d"
_WORKER = "bridge-7d9f8c6b5-x2x4q-1a2b3c4d"
LEASE_ROW: Item = {
    "leaseKey": {"S": _SHARD},
    "leaseOwner": {"S": _WORKER},
    "leaseCounter": {"N": "123456"},
    "checkpoint": {"S": "4900000000000000000012345678"},
    "checkpointSubSequenceNumber": {"N": "0"},
    "ownerSwitchesSinceCheckpoint": {"N": "0"},
    "parentShardId": {"SS": [_SHARD]},
    "bridgeLagMs": {"N": "180"},
    "bridgeLagAtMs": {"N": "1765100000000"},
}
HEARTBEAT_ROW: Item = {
    "lock_key": {"S": "workers"},
    "sort_key": {"S": _WORKER},
    "bridgeHeartbeat": {"N": "12345"},
    "expiry_time": {"N": "1765100000"},
}
# A worker's orders, empty: what it reads almost every time.
ORDERS_ROW: Item = {
    "lock_key": {"S": "orders"},
    "sort_key": {"S": _WORKER},
    "bridgeOrders": {"N": "1234"},
    "bridgeLeaderTerm": {"N": "12"},
}
LOCK_ROW: Item = {
    "lock_key": {"S": "shard-sync-leader"},
    "sort_key": {"S": "-"},
    "owner_name": {"S": _WORKER},
    "lease_duration": {"N": "8"},
    "record_version_number": {"S": "a4f4bd24-a9a1-4a36-9f17-2ab3b9b1c4e1"},
    "expiry_time": {"N": "1765100000"},
}
# An order names the lease as read: its key, owner and counter.
ORDER_BYTES = len(_SHARD) + len(_WORKER) + 8


@dataclass(frozen=True)
class Timing:
    """Seconds, as configured (``coordination``); the simulation's cycle is a take interval."""

    take_interval: float = 2.0
    renew_interval: float = 10.0 / 3
    lease_duration: float = 10.0
    orders_poll: float = 0.5
    """How often a worker reads its orders row when a leader assigns."""
    handoff_poll: float = 0.05
    """How often an asker reads the lease it asked for, until its owner answers."""


@dataclass
class LeaseBill:
    timing: Timing = field(default_factory=Timing)
    reads: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    writes: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    cycles: int = 0

    def cycle(self) -> None:
        self.cycles += 1

    def scan_leases(self, rows: int) -> None:
        """One worker's consistent Scan of the lease table."""
        self.reads["Scan of the lease table"] += _pages(rows, item_size(LEASE_ROW))

    def query_heartbeats(self, workers: int) -> None:
        """One worker's consistent Query of every heartbeat row."""
        self.reads["Query of the heartbeat rows"] += _pages(workers, item_size(HEARTBEAT_ROW))

    def renew(self, leases: int, workers: int, *, by_heartbeat: bool) -> None:
        """A take interval's renewals of the whole cluster: each lease's UpdateItem (lease
        liveness), or each worker's heartbeat and a BatchGetItem of what it holds."""
        rounds = self.timing.take_interval / self.timing.renew_interval
        beat = write_units(item_size(HEARTBEAT_ROW))
        self.writes["heartbeat rows"] += rounds * workers * beat
        if by_heartbeat:
            held = leases * read_units(item_size(LEASE_ROW), consistent=True)
            self.reads["BatchGetItem of held leases"] += rounds * held
        else:
            self.writes["lease renewals"] += rounds * leases * write_units(item_size(LEASE_ROW))

    def take(self, count: int = 1) -> None:
        self.writes["takes"] += count * write_units(item_size(LEASE_ROW))

    def handoff(self, count: int = 1) -> None:
        """Asking for a live worker's lease: the request, the asker's reads until the owner
        answers at its next renewal (half a renew interval on average), the hand-over."""
        waits = self.timing.renew_interval / 2 / self.timing.handoff_poll
        self.writes["handoffs"] += count * 2 * write_units(item_size(LEASE_ROW))
        self.reads["handoff watches"] += (
            count * waits * read_units(item_size(LEASE_ROW), consistent=True)
        )

    def lock(self, workers: int) -> None:
        """A take interval of the leader's lock: its heartbeat every tenth of a lease, and
        every other worker's consistent read of it as often (waiting to take over)."""
        beats = self.timing.take_interval / (self.timing.lease_duration / 10)
        self.writes["leader lock"] += beats * write_units(item_size(LOCK_ROW))
        self.reads["leader lock"] += (
            beats * max(0, workers - 1) * read_units(item_size(LOCK_ROW), consistent=True)
        )

    def read_orders(self, workers: int) -> None:
        """A take interval of every worker reading its own orders row (not consistent)."""
        polls = self.timing.take_interval / self.timing.orders_poll
        units = read_units(item_size(ORDERS_ROW), consistent=False)
        self.reads["orders rows"] += polls * workers * units

    def write_orders(self, orders: int) -> None:
        """The leader writing one worker's orders row."""
        self.writes["orders rows"] += write_units(item_size(ORDERS_ROW) + orders * ORDER_BYTES)

    def per_second(self) -> tuple[float, float]:
        """(read units, write units) a second, over the cycles billed."""
        seconds = max(1, self.cycles) * self.timing.take_interval
        return sum(self.reads.values()) / seconds, sum(self.writes.values()) / seconds


def _pages(rows: int, size: int) -> float:
    """A Scan or Query of ``rows`` rows of ``size`` bytes: 1 MB pages, each rounded up."""
    per_page = max(1, (1 << 20) // size)
    full, rest = divmod(rows, per_page)
    units = full * read_units(per_page * size, consistent=True)
    return units + (read_units(rest * size, consistent=True) if rest or not full else 0.0)
