"""Shard lineage: when a shard may be read, and where a stream resumes from a set of checkpoints.

A shard's changes continue in its children, so a child is read only after every parent is
exhausted; otherwise two versions of one item could be applied out of order. A parent that
left the lease table (cleaned up after it finished, or trimmed away before we ever saw it)
counts as exhausted: there is nothing left to read in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from bridge.core.positions import SHARD_END, is_sequence_number


class ShardPhase(StrEnum):
    BLOCKED = "blocked"  # a parent still has records to read
    INITIALIZING = "initializing"  # may start: getting its first iterator
    ACTIVE = "active"  # reading
    HISTORICAL = "historical"  # read to its end; its children take over


class LifecycleError(RuntimeError):
    """A transition the lineage rules forbid; always a bug in the caller."""


def parents_exhausted(parents: Iterable[str], checkpoints: Mapping[str, str | None]) -> bool:
    """True when no parent has records left: each is at SHARD_END or gone from ``checkpoints``."""
    return all(checkpoints.get(parent, SHARD_END) == SHARD_END for parent in parents)


@dataclass
class ShardLifecycle:
    """One shard's way through the phases, driven by the events its consumer sees."""

    shard_id: str
    parents: frozenset[str]
    phase: ShardPhase = ShardPhase.BLOCKED
    _open_parents: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self._open_parents = set(self.parents)
        if not self._open_parents and self.phase is ShardPhase.BLOCKED:
            self.phase = ShardPhase.INITIALIZING

    def parent_finished(self, parent: str) -> None:
        self._open_parents.discard(parent)
        if not self._open_parents and self.phase is ShardPhase.BLOCKED:
            self.phase = ShardPhase.INITIALIZING

    def reading(self) -> None:
        self._require(ShardPhase.INITIALIZING, ShardPhase.ACTIVE)
        self.phase = ShardPhase.ACTIVE

    def ended(self) -> None:
        """The shard's last record was read and checkpointed (no next iterator)."""
        self._require(ShardPhase.INITIALIZING, ShardPhase.ACTIVE)
        self.phase = ShardPhase.HISTORICAL

    def _require(self, *allowed: ShardPhase) -> None:
        if self.phase not in allowed:
            raise LifecycleError(
                f"shard {self.shard_id} is {self.phase}; expected one of "
                + ", ".join(str(p) for p in allowed)
                + (f" (open parents: {sorted(self._open_parents)})" if self._open_parents else "")
            )


def phase_of(
    shard_id: str, parents: Iterable[str], checkpoints: Mapping[str, str | None]
) -> ShardPhase:
    """The phase a shard is in, judged from the checkpoints alone (as after a restart)."""
    checkpoint = checkpoints.get(shard_id)
    if checkpoint == SHARD_END:
        return ShardPhase.HISTORICAL
    if not parents_exhausted(parents, checkpoints):
        return ShardPhase.BLOCKED
    return ShardPhase.ACTIVE if is_sequence_number(checkpoint) else ShardPhase.INITIALIZING


def resume_frontier(
    parents_of: Mapping[str, frozenset[str]], checkpoints: Mapping[str, str | None]
) -> set[str]:
    """The shards to read now: not finished, with every parent exhausted.

    These are the leaves of what has been read: never an ancestor of a finished shard (that
    would re-read), never a descendant of an unfinished one (that would reorder).
    """
    return {
        shard
        for shard, parents in parents_of.items()
        if checkpoints.get(shard) != SHARD_END
        and parents_exhausted(parents, _known(parents_of, checkpoints))
    }


def _known(
    parents_of: Mapping[str, frozenset[str]], checkpoints: Mapping[str, str | None]
) -> dict[str, str | None]:
    """Checkpoints of every shard in the tree; a shard with no checkpoint is unread, not gone."""
    return {shard: checkpoints.get(shard) for shard in parents_of}
