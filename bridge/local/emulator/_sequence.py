"""Sequence numbers: a dense run per shard, shown to clients as 21-digit decimal strings.

Every shard gets its own block of ``SHARD_SPAN`` numbers when it opens, and its records take
them one after another: within a shard, consecutive records have consecutive numbers. That
makes a loss countable, as a consumer that lost records to trimming sees exactly how many
from the gap between the last number it read and the first one still there. Blocks are handed
out in the order shards open, and a child always opens after its parent, so numbers keep
increasing along a lineage (and across the streams of one endpoint).

Inside the emulator a sequence number is the plain counter value (a small int that fits an
``array('q')``); only the wire form adds the offset, so every string has the same width and
sorts the same way as a string and as a number.
"""

from __future__ import annotations

from bridge.local.emulator._errors import ValidationError

SEQUENCE_OFFSET = 10**20
SHARD_SPAN = 10**9
"""Numbers per shard; a shard that used them all closes, as a full shard does in AWS."""

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


class SequenceBlocks:
    """Hands each new shard the first number of its block; one per emulator."""

    def __init__(self, span: int = SHARD_SPAN) -> None:
        self.span = span
        self._next_block = 1

    def take(self) -> int:
        start = self._next_block * self.span
        self._next_block += 1
        return start
