"""Shard iterators as signed tokens: the server remembers nothing per iterator.

A token names the stream, the shard, the next sequence number to read and when it was issued,
with an HMAC over those so a client cannot forge or edit one. Abandoned iterators therefore
cost no memory at all, and expiry is a comparison of the issue time with ``now``. A token also
carries the codec's generation, which a reset of the endpoint moves on: the server cannot hunt
down iterators it never kept, so it refuses every one issued before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from bridge.local.emulator._errors import ExpiredIteratorError, ValidationError

_VERSION = "2"
_MAC_BYTES = 16
_MAX_TOKEN_CHARS = 2048  # the API's own limit on ShardIterator


@dataclass(frozen=True, slots=True)
class IteratorPosition:
    """What an iterator points at: records of ``shard_id`` from sequence ``position`` on."""

    stream_arn: str
    shard_id: str
    position: int
    issued_at: float


class IteratorCodec:
    """Encodes and checks iterator tokens; ``ttl`` seconds after issue a token has expired."""

    def __init__(self, secret: bytes, ttl: float) -> None:
        self._secret = secret
        self.ttl = ttl
        self.generation = 0

    def retire_issued(self) -> None:
        """Refuse every token issued so far (they name streams that no longer exist)."""
        self.generation += 1

    def encode(self, position: IteratorPosition) -> str:
        issued_ms = round(position.issued_at * 1000)
        payload = "|".join(
            (
                _VERSION,
                str(self.generation),
                position.stream_arn,
                position.shard_id,
                str(position.position),
                str(issued_ms),
            )
        ).encode()
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def decode(self, token: str, now: float) -> IteratorPosition:
        """The position a token names; ValidationException if it is not one of ours."""
        raw = self._unwrap(token)
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise ValidationError("Invalid ShardIterator: not issued by this endpoint")
        try:
            version, generation, arn, shard_id, position, issued_ms = payload.decode().split("|")
            decoded = IteratorPosition(arn, shard_id, int(position), int(issued_ms) / 1000)
        except ValueError:
            raise ValidationError("Invalid ShardIterator") from None
        if version != _VERSION:
            raise ValidationError("Invalid ShardIterator: unknown version")
        if generation != str(self.generation):
            raise ValidationError(
                "Invalid ShardIterator: issued before the endpoint was reset, "
                "for a stream that no longer exists"
            )
        if now - decoded.issued_at > self.ttl:
            raise ExpiredIteratorError(
                f"Iterator expired: issued {now - decoded.issued_at:.0f}s ago, "
                f"iterators are valid for {self.ttl:g}s"
            )
        return decoded

    def _unwrap(self, token: str) -> bytes:
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise ValidationError("Invalid ShardIterator: wrong length")
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise ValidationError("Invalid ShardIterator: not a shard iterator") from None
        if len(raw) <= _MAC_BYTES:
            raise ValidationError("Invalid ShardIterator: too short")
        return raw

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
