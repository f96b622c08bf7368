"""Where a shard's reading starts, and where it resumes after an expired iterator or a trim.

A checkpoint is a sequence number or one of the sentinels ``TRIM_HORIZON``, ``LATEST`` and
``SHARD_END`` (KCL's vocabulary, so a KCL lease table reads the same). Reading resumes AFTER
a checkpointed sequence number: that record was processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

TRIM_HORIZON = "TRIM_HORIZON"
LATEST = "LATEST"
SHARD_END = "SHARD_END"
SENTINELS = frozenset({TRIM_HORIZON, LATEST, SHARD_END})

IteratorKind = Literal["TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"]
InitialPosition = Literal["trim_horizon", "latest"]


@dataclass(frozen=True)
class IteratorRequest:
    kind: IteratorKind
    sequence_number: str | None = None

    def __post_init__(self) -> None:
        positional = self.kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")
        if positional != (self.sequence_number is not None):
            raise ValueError(f"{self.kind} and sequence number {self.sequence_number!r} disagree")


def is_sequence_number(checkpoint: str | None) -> bool:
    return checkpoint is not None and checkpoint.isdigit()


class UnknownCheckpointError(ValueError):
    """A lease's checkpoint is neither a sequence number nor a position bridge knows (KCL's
    ``AT_TIMESTAMP``, for one): reading would start at a guess."""


def start_position(
    checkpoint: str | None, initial: InitialPosition, has_parents: bool
) -> IteratorRequest | None:
    """The first iterator for a shard; ``None`` when the shard is already finished.

    ``initial`` applies only to a shard with no parents in the lease table: a child of a shard
    we read must be read from its first record, or the changes between the parent's end and
    "now" would be skipped.
    """
    if checkpoint == SHARD_END:
        return None
    if is_sequence_number(checkpoint):
        return IteratorRequest("AFTER_SEQUENCE_NUMBER", checkpoint)
    if checkpoint == TRIM_HORIZON:
        return IteratorRequest("TRIM_HORIZON")
    if checkpoint == LATEST:
        return IteratorRequest("LATEST")
    if checkpoint is not None:
        raise UnknownCheckpointError(
            f"{checkpoint!r} is not a checkpoint bridge knows (a sequence number, "
            f"{TRIM_HORIZON}, {LATEST} or {SHARD_END})"
        )
    if initial == "latest" and not has_parents:
        return IteratorRequest("LATEST")
    return IteratorRequest("TRIM_HORIZON")


def resume_after_expiry(
    last_read: str | None, checkpoint: str | None, initial: InitialPosition, has_parents: bool
) -> IteratorRequest:
    """A new iterator after ``ExpiredIteratorException``: right after the last record handed to
    the processor, so nothing is skipped and nothing is read twice.

    With nothing read yet it is the start position again: a ``LATEST`` start stays ``LATEST``,
    since nothing was read and nothing can have been missed that the user asked to see.
    """
    if last_read is not None:
        return IteratorRequest("AFTER_SEQUENCE_NUMBER", last_read)
    request = start_position(checkpoint, initial, has_parents)
    return request or IteratorRequest("TRIM_HORIZON")


OnTrimmed = Literal["fail", "resume", "rebootstrap"]


class TrimAction(StrEnum):
    FAIL = "fail"
    RESUME = "resume"
    REBOOTSTRAP = "rebootstrap"


@dataclass(frozen=True)
class TrimDecision:
    """What to do when the records after ``position`` were trimmed before we read them."""

    action: TrimAction
    lost_after: str | None
    retry_from: IteratorRequest | None


def after_trim(
    position: str | None, on_trimmed: OnTrimmed, *, covered: bool = False
) -> TrimDecision:
    """``fail`` stops at ``position`` with an error (the worker exits 1: a loss must be seen to);
    ``resume`` reads on from the oldest record still there; ``rebootstrap`` reads on too and
    asks for a fresh snapshot of the table, which holds what was lost (the shard then waits
    for it, as every shard does). Either way the caller counts the loss from ``lost_after``.

    ``covered``: a snapshot taken since holds whatever was trimmed (its cut-off is within the
    stream's retention, so every trimmed record is older than it): nothing is lost, and the
    shard reads on from the oldest record still there.
    """
    if covered:
        return TrimDecision(TrimAction.RESUME, None, IteratorRequest("TRIM_HORIZON"))
    lost_after = position if is_sequence_number(position) else None
    if on_trimmed == "fail":
        return TrimDecision(TrimAction.FAIL, lost_after, None)
    action = TrimAction.REBOOTSTRAP if on_trimmed == "rebootstrap" else TrimAction.RESUME
    return TrimDecision(action, lost_after, IteratorRequest("TRIM_HORIZON"))


def records_lost(after: str | None, first_available: str) -> int:
    """Records between ``after`` (the last one read) and the oldest one still there.

    Exact where a shard's sequence numbers are consecutive (``bridge local``); an upper bound
    on AWS, whose numbers are sparse. Either way it is non-zero exactly when something was
    lost, which is what an alert needs.
    """
    if after is None or not is_sequence_number(after) or not first_available.isdigit():
        return 0
    return max(0, int(first_available) - int(after) - 1)
