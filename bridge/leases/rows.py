"""A lease row's layout: KCL's attribute names, our own ``bridge``-prefixed ones, and the
parse of a row into a ``Lease``. One place, so the store, ``bridge status`` and the KCL
check read a row the same way."""

from __future__ import annotations

from typing import Any

from bridge.core.leasing import LagReading, Lease
from bridge.errors import LeaseLostError

KEY = "leaseKey"
OWNER = "leaseOwner"
COUNTER = "leaseCounter"
CHECKPOINT = "checkpoint"
SUB_SEQUENCE = "checkpointSubSequenceNumber"
OWNER_SWITCHES = "ownerSwitchesSinceCheckpoint"
PARENTS = "parentShardId"
CHILDREN = "childShardIds"
# Our own, for `bridge status`: the owner's lag reading, written with renewals and checkpoints.
LAG_MS = "bridgeLagMs"
LAG_AT_MS = "bridgeLagAtMs"
# Ours too: when the owner asked for a fresh snapshot (``on_trimmed: rebootstrap``).
SNAPSHOT_WANTED = "bridgeSnapshotWantedMs"
# And when the owner stopped reading for a fresh snapshot: the cut-off it paused for.
PAUSED_FOR = "bridgePausedForMs"
# And the worker the lease is asked for: its owner hands it over at its next batch boundary.
HANDOFF_TO = "bridgeHandoffTo"


# Written by KCL, read by it only: a lease bridge takes loses them, so that a later KCL (a
# rollback) does not act on a checkpoint bridge has moved past.
KCL_ONLY = (
    "checkpointOwner",
    "pendingCheckpoint",
    "pendingCheckpointSubSequenceNumber",
    "pendingCheckpointState",
)
ENTITY_TYPE = "entityType"
"""KCL 3 keeps rows that are not leases in the lease table (the leader's, worker metrics,
version migration state), marked by this attribute."""


def is_lease(item: dict[str, Any]) -> bool:
    """A lease row, as opposed to another row KCL keeps in the table: those are left alone."""
    kind = item.get(ENTITY_TYPE, {}).get("S")
    return KEY in item and COUNTER in item and kind in (None, "LEASE", "lease")


def _lag(item: dict[str, Any]) -> LagReading | None:
    lag, measured_at = item.get(LAG_MS, {}).get("N"), item.get(LAG_AT_MS, {}).get("N")
    if lag is None or measured_at is None:
        return None
    return LagReading(lag_ms=round(float(lag)), measured_at_ms=round(float(measured_at)))


def _strings(item: dict[str, Any], name: str) -> frozenset[str]:
    value = item.get(name)
    if not value:
        return frozenset()
    if "SS" in value:
        return frozenset(value["SS"])
    return frozenset([value["S"]]) if "S" in value else frozenset()


def lease_of(item: dict[str, Any]) -> Lease:
    """A lease row (``is_lease``) as a ``Lease``."""
    return Lease(
        key=item[KEY]["S"],
        owner=item.get(OWNER, {}).get("S"),
        counter=int(item.get(COUNTER, {"N": "0"})["N"]),
        checkpoint=item.get(CHECKPOINT, {}).get("S"),
        parents=_strings(item, PARENTS),
        children=_strings(item, CHILDREN),
        owner_switches=int(item.get(OWNER_SWITCHES, {"N": "0"})["N"]),
        lag=_lag(item),
        snapshot_wanted_ms=_number(item, SNAPSHOT_WANTED),
        paused_for_ms=_number(item, PAUSED_FOR),
        handoff_to=item.get(HANDOFF_TO, {}).get("S"),
    )


def _number(item: dict[str, Any], name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def owner_value(lease: Lease) -> dict[str, str]:
    """The owner, as the value a write is conditional on: a lease with none is not ours."""
    if lease.owner is None:
        raise LeaseLostError(f"lease {lease.key} has no owner")
    return {"S": lease.owner}


def set_lag(lease: Lease, names: dict[str, str], values: dict[str, Any]) -> str:
    """The SET clauses (after a comma) that write the lease's lag reading; "" without one."""
    if lease.lag is None:
        return ""
    names.update({"#lag": LAG_MS, "#lagat": LAG_AT_MS})
    values[":lag"] = {"N": str(lease.lag.lag_ms)}
    values[":lagat"] = {"N": str(lease.lag.measured_at_ms)}
    return ", #lag = :lag, #lagat = :lagat"
