"""What the journal of a cluster run says: takeovers, losses, order, duplicates, overlaps."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from bridge.core.positions import SHARD_END, is_sequence_number
from tests.cluster.timed_journal import Journal, Line
from tests.support.workload import versions_by_key


def takeover_times(
    journal: Journal, shards: Iterable[str], *, after: float, not_pid: int
) -> dict[str, float | None]:
    """For each shard, how long after ``after`` another process first processed it: its first
    record, or its shard end when nothing was left to read. None: not yet."""
    firsts: dict[str, float] = {}
    wanted = set(shards)
    for line in journal.lines:
        if line.shard in wanted and line.pid != not_pid and line.t >= after:
            firsts[line.shard] = min(firsts.get(line.shard, line.t), line.t)
    for event in journal.events:
        if (
            event.event == "end"
            and event.reason == "shard_end"
            and event.shard in wanted
            and event.pid != not_pid
            and event.t >= after
        ):
            firsts[event.shard] = min(firsts.get(event.shard, event.t), event.t)
    return {shard: (firsts[shard] - after if shard in firsts else None) for shard in sorted(wanted)}


def start_times(
    journal: Journal, shards: Iterable[str], *, after: float, not_pid: int
) -> dict[str, float | None]:
    """For each shard, how long after ``after`` another process started reading it (its
    processor's ``start``: the lease taken and the consumer launched). None: not yet."""
    firsts: dict[str, float] = {}
    wanted = set(shards)
    for event in journal.events:
        if (
            event.event == "start"
            and event.shard in wanted
            and event.pid != not_pid
            and event.t >= after
        ):
            firsts[event.shard] = min(firsts.get(event.shard, event.t), event.t)
    return {shard: (firsts[shard] - after if shard in firsts else None) for shard in sorted(wanted)}


def first_appearances(lines: Iterable[Line]) -> dict[tuple[str, int], Line]:
    first: dict[tuple[str, int], Line] = {}
    for line in lines:
        first.setdefault((line.key, line.version), line)
    return first


def assert_all_delivered_in_order(journal: Journal, written: list[tuple[str, int]]) -> None:
    """Nothing lost, nothing invented, and each key's changes first appear in write order."""
    first = first_appearances(journal.lines)
    missing = set(written) - first.keys()
    assert not missing, f"{len(missing)} changes never processed, e.g. {sorted(missing)[:5]}"
    extra = first.keys() - set(written)
    assert not extra, f"processed changes nobody wrote: {sorted(extra)[:5]}"
    seen = versions_by_key(first)
    expected = versions_by_key(written)
    wrong = {key: seen[key] for key in expected if seen[key] != expected[key]}
    assert not wrong, (
        f"keys whose changes first appeared out of order: {dict(list(wrong.items())[:3])}"
    )


@dataclass(frozen=True)
class Duplicate:
    shard: str
    seq: str
    first: Line
    again: Line


def duplicates(journal: Journal) -> list[Duplicate]:
    """Records processed more than once (the same shard and sequence number)."""
    first: dict[tuple[str, str], Line] = {}
    found = []
    for line in journal.lines:
        record = (line.shard, line.seq)
        if record in first:
            found.append(Duplicate(line.shard, line.seq, first[record], line))
        else:
            first[record] = line
    return found


def assert_duplicates_only_after_checkpoints(
    found: list[Duplicate], *, pid: int, checkpoints: Mapping[str, str | None]
) -> None:
    """Every record handed over twice was first processed by ``pid`` (the killed worker) after
    the last checkpoint it wrote for that shard."""
    for dup in found:
        assert dup.first.pid == pid, f"a record processed twice, not by the killed worker: {dup}"
        checkpoint = checkpoints.get(dup.shard)
        assert checkpoint != SHARD_END, f"{dup} replayed from a finished shard"
        if checkpoint is not None and is_sequence_number(checkpoint):
            assert int(dup.seq) > int(checkpoint), f"{dup} replayed from before {checkpoint}"


def assert_duplicates_explained(journal: Journal, found: list[Duplicate], killed: Set[int]) -> None:
    """Every record handed over twice involves a killed process, or a tenure whose lease was
    lost (stolen or expired) with a batch in hand: a clean handoff duplicates nothing."""
    ends = journal.ends()

    def explains(line: Line) -> bool:
        end = ends.get(line.tenure)
        return line.pid in killed or (end is not None and end.reason == "lease_lost")

    unexplained = [dup for dup in found if not (explains(dup.first) or explains(dup.again))]
    assert not unexplained, (
        f"records processed twice without a kill or a lost lease: {unexplained[:3]}"
    )


def describe_duplicates(found: list[Duplicate]) -> str:
    by_handoff: dict[tuple[str, str], int] = defaultdict(int)
    for dup in found:
        by_handoff[(dup.first.worker, dup.again.worker)] += 1
    handoffs = ", ".join(f"{a}->{b}: {n}" for (a, b), n in sorted(by_handoff.items()))
    return f"{len(found)} duplicates ({handoffs or 'none'})"


# -- one owner at a time ----------------------------------------------------------------------


@dataclass
class Tenure:
    """One worker's ownership of one shard: one processor instance, start to end."""

    tenure: str
    shard: str
    worker: str
    pid: int
    start: float
    batches: dict[int, tuple[float, float]]  # batch number -> (process() called, written)
    end_reason: str | None = None


def tenures(journal: Journal) -> dict[str, list[Tenure]]:
    """Every shard's tenures, in the order they started."""
    found: dict[str, Tenure] = {}
    for event in journal.events:
        if event.event == "start":
            found[event.tenure] = Tenure(
                event.tenure, event.shard, event.worker, event.pid, event.t, {}
            )
    for line in journal.lines:
        tenure = found[line.tenure]
        tenure.batches.setdefault(line.batch, (line.t, line.done))
    for event in journal.events:
        if event.event == "end":
            found[event.tenure].end_reason = event.reason
    by_shard: dict[str, list[Tenure]] = defaultdict(list)
    for tenure in sorted(found.values(), key=lambda t: t.start):
        by_shard[tenure.shard].append(tenure)
    return dict(by_shard)


@dataclass(frozen=True)
class Overlap:
    shard: str
    earlier: Tenure
    later: Tenure
    batches: list[tuple[float, float]]  # the earlier tenure's batches still going on


def overlaps(journal: Journal) -> list[Overlap]:
    """Batches of a shard's earlier tenure still being processed when a later tenure started."""
    found = []
    for shard, ordered in tenures(journal).items():
        for i, earlier in enumerate(ordered):
            for later in ordered[i + 1 :]:
                late = sorted(b for b in earlier.batches.values() if b[1] > later.start)
                if late:
                    found.append(Overlap(shard, earlier, later, late))
    return found


def assert_one_owner_at_a_time(journal: Journal, killed: Set[int] = frozenset()) -> int:
    """The rule, per shard, over every pair of tenures A (started first) and B:

    1. at most ONE batch of A is still being processed (not yet written) when B's consumer
       started (B took the lease and opened its processor): A's in-flight batch, read before A
       could know that the lease moved;
    2. when there is one, A's tenure ended with ``lease_lost`` (its checkpoint or renewal was
       refused, so it wrote nothing for the shard after that batch), or A's process was killed
       before it could say so.

    Two workers therefore never process one shard side by side beyond the batch in hand at
    the moment the lease moved. Returns how many tenures had such an in-flight batch.
    """
    problems = []
    found = overlaps(journal)
    for overlap in found:
        a, b = overlap.earlier, overlap.later
        if len(overlap.batches) > 1:
            problems.append(
                f"{overlap.shard}: {a.worker} processed {len(overlap.batches)} batches after "
                f"{b.worker} took over"
            )
        if a.end_reason != "lease_lost" and a.pid not in killed:
            problems.append(
                f"{overlap.shard}: {a.worker} overlapped {b.worker} and ended {a.end_reason}"
            )
    assert not problems, "two owners of one shard at once:\n" + "\n".join(problems)
    return len(found)
