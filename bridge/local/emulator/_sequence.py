"""Sequence numbers: one increasing counter, shown to clients as 21-digit decimal strings.

Inside the emulator a sequence number is the plain counter value (a small int that fits an
``array('q')``); only the wire form adds the offset, so every string has the same width and
sorts the same way as a string and as a number, as real ones do within a stream.
"""

from __future__ import annotations

from bridge.local.emulator._errors import ValidationError

SEQUENCE_OFFSET = 10**20
_MAX_DIGITS = 40


def format_sequence(counter: int) -> str:
    return str(SEQUENCE_OFFSET + counter)


def parse_sequence(text: str) -> int:
    """The counter behind a client's sequence number, or ValidationException."""
    if not text.isdigit() or len(text) > _MAX_DIGITS:
        raise ValidationError(f"Invalid SequenceNumber: {text!r}")
    counter = int(text) - SEQUENCE_OFFSET
    if counter < 0:
        raise ValidationError(f"Invalid SequenceNumber: {text!r} is not from this stream")
    return counter


class SequenceCounter:
    """Hands out sequence numbers; one per emulator, so they increase along any lineage."""

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def peek(self) -> int:
        """The number the next record will get: where a new shard or a LATEST iterator starts."""
        return self._next

    def take(self) -> int:
        value = self._next
        self._next += 1
        return value
