"""Lease keys: which stream and shard a lease is for.

An application that reads one table keys its leases by shard id (``shardId-...``), as KCL
does in single-stream mode. One that reads several tables (``source.tables``) keys them as
KCL's multi-stream mode does with the DynamoDB Streams adapter, so that tables cannot collide
and a KCL multi-stream lease table can be taken over in place:
``<stream identifier>:<shard id>``, the identifier being
``<account>:<region>$<account>$<table>$<stream label>:1``. A stream label holds colons (it is
a timestamp), so a key is split at its last ``:shardId-`` (or ``:bridge-snapshot-``, a
snapshot segment's lease). Pure: the strings only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

_ARN = re.compile(
    r"arn:(?P<partition>[^:]+):dynamodb:(?P<region>[^:]+):(?P<account>[^:]+):"
    r"table/(?P<table>[^/]+)/stream/(?P<label>.+)"
)
_ENTITY = re.compile(r":(?=(?:shardId-|bridge-snapshot-))")


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


L = TypeVar("L", bound=_Keyed)

_EPOCH = "1"
"""KCL's stream creation epoch in the identifier; the adapter writes 1."""


@dataclass(frozen=True)
class StreamId:
    """One table's stream, as a lease key names it."""

    account: str
    region: str
    table: str
    label: str
    partition: str = "aws"

    @classmethod
    def of_arn(cls, arn: str) -> StreamId:
        match = _ARN.fullmatch(arn)
        if match is None:
            raise ValueError(f"not a DynamoDB stream ARN: {arn!r}")
        return cls(
            match["account"], match["region"], match["table"], match["label"], match["partition"]
        )

    @property
    def arn(self) -> str:
        return (
            f"arn:{self.partition}:dynamodb:{self.region}:{self.account}:table/{self.table}"
            f"/stream/{self.label}"
        )

    @property
    def identifier(self) -> str:
        return f"{self.account}:{self.region}${self.account}${self.table}${self.label}:{_EPOCH}"

    def key(self, shard_or_segment: str) -> str:
        return f"{self.identifier}:{shard_or_segment}"


@dataclass(frozen=True)
class KeyParts:
    stream: str | None
    """The stream identifier of a multi-stream key; None for a plain shard id."""
    name: str
    """The shard id (or snapshot segment) the lease is for."""


def split_key(key: str) -> KeyParts:
    """A lease key's stream identifier (None for a single-stream key) and shard id."""
    found = list(_ENTITY.finditer(key))
    if not found:
        return KeyParts(None, key)
    cut = found[-1].start()
    return KeyParts(key[:cut], key[cut + 1 :])


def stream_of_identifier(identifier: str) -> StreamId | None:
    """The stream a multi-stream identifier names; None if it is not one of the adapter's."""
    account, _, rest = identifier.partition(":")
    name, _, epoch = rest.rpartition(":")
    parts = name.split("$", 3)
    if not epoch or len(parts) != 4 or parts[1] != account:
        return None
    region, _, table, label = parts
    return StreamId(account, region, table, label)


@dataclass(frozen=True)
class StreamKeys:
    """How the leases of one stream are keyed in an application's lease table: by shard id,
    or (``keyed``) by KCL's multi-stream key. A lease's *name* is its shard id (or snapshot
    segment), what the Streams API and the processors are told; its key is what the lease
    table holds. Parent and child links hold names, as KCL's multi-stream leases do. With no
    ``stream`` (a stream whose ARN is not known here), every key is a name."""

    stream: StreamId | None = None
    keyed: bool = False

    def key(self, name: str) -> str:
        return self.stream.key(name) if self.keyed and self.stream is not None else name

    def name_of(self, key: str) -> str | None:
        """The name of a lease of this stream; None for another stream's lease."""
        if self.stream is None:
            return key
        parts = split_key(key)
        if self.keyed:
            return parts.name if parts.stream == self.stream.identifier else None
        return parts.name if parts.stream is None else None

    def parent_keys(self, parents: Iterable[str]) -> frozenset[str]:
        """The lease keys of parent links, whether a link holds a name or (as some KCL
        versions wrote them) a key."""
        return frozenset(self.key(self.name_of(parent) or parent) for parent in parents)

    def ours(self, leases: Iterable[L]) -> list[L]:
        """The leases of this stream, of all those in the table."""
        return [lease for lease in leases if self.name_of(lease.key) is not None]

    @classmethod
    def for_table(cls, stream_arn: str, keys: Iterable[str]) -> StreamKeys:
        """Keyed as the lease table already keys this stream's leases: by KCL's multi-stream
        keys if any lease there has one for this stream, else by shard id."""
        try:
            stream = StreamId.of_arn(stream_arn)
        except ValueError:
            return cls()
        keyed = any(split_key(key).stream == stream.identifier for key in keys)
        return cls(stream, keyed)


BY_SHARD_ID = StreamKeys()
"""Every key a name: a stream whose leases are keyed by shard id, as far as anyone here knows."""
