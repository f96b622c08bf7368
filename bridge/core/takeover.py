"""What taking over a KCL application's lease table would do, lease by lease and shard by shard.

``bridge kcl check`` gathers the rows of the lease table, the stream's shards and which
checkpoints retention has trimmed, and this judges them, writing nothing. A takeover is safe
when nothing would be read twice (a shard KCL finished, leased again from its start) and
nothing lost (a checkpoint past which retention trimmed records, or a shard gone from the
stream before it was finished), and every checkpoint is one bridge can resume from. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, replace
from enum import StrEnum

from bridge.core.lease_keys import StreamKeys, split_key
from bridge.core.leasing import Lease
from bridge.core.positions import (
    LATEST,
    SHARD_END,
    TRIM_HORIZON,
    InitialPosition,
    is_sequence_number,
)
from bridge.core.sync_plan import StreamShard, ancestors_of_leased, plan_sync


class Verdict(StrEnum):
    RESUME = "resume"
    """Read on right after the lease's checkpoint."""
    DONE = "done"
    """Read to its end already."""
    START = "start"
    """No records read yet: starts at TRIM_HORIZON or LATEST, as the lease says."""
    CREATE = "create"
    """A shard without a lease that bridge would lease (new since KCL's last sync)."""
    SKIP = "skip"
    """A closed shard without a lease whose descendants are leased: KCL read it to its end."""
    IGNORE = "ignore"
    """A row that is not a lease of this stream: left as it is."""
    LOSE = "lose"
    """Records after the checkpoint are gone (trimmed, or the shard left the stream)."""
    REPLAY = "replay"
    """Records KCL processed would be read again."""
    UNKNOWN = "unknown"
    """A checkpoint bridge cannot resume from (``AT_TIMESTAMP``, or a key it cannot read)."""


UNSAFE = frozenset({Verdict.LOSE, Verdict.REPLAY, Verdict.UNKNOWN})


@dataclass(frozen=True)
class Finding:
    key: str
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class TakeoverReport:
    findings: tuple[Finding, ...]

    @property
    def safe(self) -> bool:
        return not any(finding.verdict in UNSAFE for finding in self.findings)

    def count(self, verdict: Verdict) -> int:
        return sum(finding.verdict is verdict for finding in self.findings)


def judge_takeover(
    *,
    shards: Mapping[str, StreamShard],
    leases: Iterable[Lease],
    other_rows: Iterable[tuple[str, str]],
    trimmed: Set[str],
    live_owners: Set[str],
    initial: InitialPosition,
    keys: StreamKeys | None = None,
) -> TakeoverReport:
    """``other_rows``: (key, what it is) of rows that are not leases; ``trimmed``: lease keys
    whose checkpoint retention has passed; ``live_owners``: bridge workers with a heartbeat
    (any other owner is KCL's, whose lease bridge takes once it expires)."""
    findings = [Finding(key, Verdict.IGNORE, f"not a lease ({what})") for key, what in other_rows]
    leased: dict[str, Lease] = {}
    for lease in leases:
        name = split_key(lease.key).name if keys is None else keys.name_of(lease.key)
        if name is None or (keys is None and split_key(lease.key).stream is not None):
            findings.append(Finding(lease.key, Verdict.IGNORE, "another stream's lease"))
            continue
        named = replace(
            lease,
            key=name,
            parents=frozenset(split_key(p).name for p in lease.parents),
            children=frozenset(split_key(c).name for c in lease.children),
        )
        leased[name] = named
        finding = _judge_lease(named, shards, trimmed, live_owners)
        findings.append(replace(finding, key=lease.key))
    superseded = ancestors_of_leased(shards, leased)
    plan = plan_sync(shards, leased, initial)
    for key, _ in plan.create:
        if key in superseded:
            findings.append(Finding(key, Verdict.REPLAY, "closed, read by KCL: leased again"))
        else:
            findings.append(Finding(key, Verdict.CREATE, "no lease yet: leased and read"))
    created = {key for key, _ in plan.create}
    for key in sorted(superseded - leased.keys() - created):
        if key in shards:
            findings.append(Finding(key, Verdict.SKIP, "its descendants are leased: done"))
    return TakeoverReport(tuple(findings))


def _judge_lease(
    lease: Lease,
    shards: Mapping[str, StreamShard],
    trimmed: Set[str],
    live_owners: Set[str],
) -> Finding:
    owner = ""
    if lease.owner is not None and lease.owner not in live_owners:
        owner = f"; held by {lease.owner}, taken once its lease expires"
    checkpoint = lease.checkpoint
    if checkpoint == SHARD_END:
        return Finding(lease.key, Verdict.DONE, "read to its end" + owner)
    if checkpoint is not None and not is_sequence_number(checkpoint):
        if checkpoint in (TRIM_HORIZON, LATEST):
            return Finding(lease.key, Verdict.START, f"nothing read yet: {checkpoint}" + owner)
        return Finding(lease.key, Verdict.UNKNOWN, f"checkpoint {checkpoint!r}" + owner)
    if lease.key not in shards:
        return Finding(lease.key, Verdict.LOSE, "unfinished, and gone from the stream" + owner)
    if lease.key in trimmed:
        return Finding(
            lease.key, Verdict.LOSE, f"records after {checkpoint} were trimmed by retention"
        )
    if checkpoint is None:
        return Finding(lease.key, Verdict.START, "no checkpoint: starts as configured" + owner)
    return Finding(lease.key, Verdict.RESUME, f"after {checkpoint}" + owner)
