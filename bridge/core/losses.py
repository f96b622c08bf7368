"""Records lost to retention on one shard: measured when found, reported once.

A gap is found when a read fails because retention trimmed records the shard had not read yet.
Its size is known only when the oldest record still there is seen (or the shard's end, when
nothing after the gap is left). It is reported only once a checkpoint past it lands: reported
at once, it would be counted twice whenever the lease moved before that checkpoint, because
the next owner resumes before the gap and finds it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.core.positions import records_lost


@dataclass(frozen=True)
class Loss:
    """``count`` records after sequence number ``after`` were trimmed before they were read."""

    count: int
    after: str | None


@dataclass
class LossLedger:
    _lost_after: str | None = None
    _unreported: Loss | None = None

    @property
    def measuring(self) -> bool:
        """A gap was found and its far side has not been seen yet."""
        return self._lost_after is not None

    def gap_found(self, lost_after: str | None) -> None:
        """Records after ``lost_after`` (the last one read) are gone; None when what was read
        last is not a sequence number, so nothing can be measured."""
        self._lost_after = lost_after

    def first_available(self, sequence_number: str) -> None:
        """The oldest record still there: the gap ends right before it."""
        after, self._lost_after = self._lost_after, None
        lost = records_lost(after, sequence_number)
        if lost:
            self._unreported = Loss(lost, after)

    def ran_to_shard_end(self, ending_sequence_number: str) -> None:
        """The shard closed and nothing after the gap is left: the loss runs to its end."""
        if ending_sequence_number.isdigit():
            self.first_available(str(int(ending_sequence_number) + 1))

    def forget(self) -> None:
        """The whole shard is gone: how many records went with it cannot be known."""
        self._lost_after = None

    def checkpointed(self) -> Loss | None:
        """A checkpoint past the gap landed (or the shard stops here): the loss to report,
        once; None when there is none."""
        loss, self._unreported = self._unreported, None
        return loss
