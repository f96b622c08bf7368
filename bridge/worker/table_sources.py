"""The tables a worker reads, and which table's stream each lease is for.

An application reads one table (``source.table``) or several (``source.tables``: names or
glob patterns such as ``orders-*``). With several, every lease key is KCL's multi-stream key
(``core.lease_keys``), so the key alone says which table and stream a lease is for: a worker
learns a table from the first lease of it that it takes, and only the leader looks for tables,
at start and at every shard sync (a table created later that matches a pattern is found then).
Each table has its own processor factory (``processor.kind`` made for that table: a Kafka
topic from the ``{table}`` template, a SQLite file from the ``{table}`` in its path), opened
when the worker first needs it, and its own series of the metrics.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from bridge.config import BridgeConfig, SourceConfig
from bridge.core.lease_keys import StreamId, StreamKeys, split_key, stream_of_identifier
from bridge.core.leasing import Lease
from bridge.core.readiness import Readiness
from bridge.core.snapshot_plan import SnapshotRequest
from bridge.metrics import Metrics
from bridge.processors.api import ProcessorFactory

log = structlog.get_logger("bridge.sources")


@dataclass(eq=False)
class TableSource:
    """One table: its stream, how its leases are keyed, and what its changes go to."""

    table: str
    stream_arn: str
    keys: StreamKeys
    source: SourceConfig
    """The configuration's source, narrowed to this table."""
    metrics: Metrics
    factory: ProcessorFactory
    snapshot: SnapshotRequest | None
    opened: bool = False


class TableSources:
    def __init__(
        self,
        config: BridgeConfig,
        metrics: Metrics,
        make_factory: Callable[[SourceConfig], ProcessorFactory],
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.make_factory = make_factory
        self.patterns = config.source.tables
        """None: one table (``source.table``)."""
        self._by_stream: dict[str, TableSource] = {}
        self._retired: set[str] = set()
        self._single: TableSource | None = None

    @property
    def several(self) -> bool:
        return self.patterns is not None

    def single(self, stream_arn: str, keys: StreamKeys, factory: ProcessorFactory) -> TableSource:
        """The one table of ``source.table``, whose factory the worker opens itself."""
        source = TableSource(
            table=self.config.source.name,
            stream_arn=stream_arn,
            keys=keys,
            source=self.config.source,
            metrics=self.metrics,
            factory=factory,
            snapshot=snapshot_request(self.config, factory),
            opened=True,
        )
        self._single = source
        return source

    def matches(self, table: str) -> bool:
        return any(fnmatch.fnmatchcase(table, pattern) for pattern in self.patterns or ())

    def locate(self, key: str) -> TableSource | None:
        """The table a lease is for; None for a lease that is not this application's."""
        if self._single is not None:
            return self._single if self._single.keys.name_of(key) is not None else None
        identifier = split_key(key).stream
        if identifier is None:
            return None
        known = self._by_stream.get(identifier)
        if known is not None:
            return known
        if identifier in self._retired:
            return None
        stream = stream_of_identifier(identifier)
        if stream is None or not self.matches(stream.table):
            return None
        return self.add(stream.table, stream.arn)

    def ours(self, leases: Iterable[Lease]) -> list[Lease]:
        """The leases of this application's tables, of all those in the lease table."""
        return [lease for lease in leases if self.locate(lease.key) is not None]

    def add(self, table: str, stream_arn: str) -> TableSource:
        """A table of ``source.tables`` (found by the leader, or from a lease's key)."""
        stream = StreamId.of_arn(stream_arn)
        known = self._by_stream.get(stream.identifier)
        if known is not None:
            return known
        narrowed = self.config.source.for_table(table, stream_arn)
        config = self.config.model_copy(update={"source": narrowed})
        factory = self.make_factory(narrowed)
        source = TableSource(
            table=table,
            stream_arn=stream_arn,
            keys=StreamKeys(stream, keyed=True),
            source=narrowed,
            metrics=self.metrics.of_table(table),
            factory=factory,
            snapshot=snapshot_request(config, factory),
        )
        self._by_stream[stream.identifier] = source
        log.info("table added", table=table, stream=stream_arn)
        return source

    def retire(self, source: TableSource) -> None:
        """A stream that no longer exists: its leases are not this application's any more."""
        stream = source.keys.stream
        if stream is not None:
            self._by_stream.pop(stream.identifier, None)
            self._retired.add(stream.identifier)

    def known(self) -> list[TableSource]:
        if self._single is not None:
            return [self._single]
        return list(self._by_stream.values())

    async def ready(self, source: TableSource) -> None:
        """Open the table's factory the first time a processor of it is needed."""
        if not source.opened:
            await source.factory.open()
            source.opened = True

    async def close(self) -> None:
        """Close the factories this object opened (the single table's is the worker's)."""
        for source in self._by_stream.values():
            if source.opened:
                await source.factory.close()
                source.opened = False

    def freshness(self, now: float) -> Readiness | None:
        """The processors' verdicts over every table: the first that is not ready, if any."""
        verdicts = [
            verdict
            for source in self.known()
            if source.opened and (verdict := source.factory.freshness(now)) is not None
        ]
        return next((v for v in verdicts if not v.ready), verdicts[0] if verdicts else None)


def snapshot_request(config: BridgeConfig, factory: ProcessorFactory) -> SnapshotRequest | None:
    """When the cluster scans the table, if ever: on a new application's start (``start:
    bootstrap | auto``) for a processor that takes snapshots, and after records were trimmed
    before they were read (``on_trimmed: rebootstrap``) for one that applies fresh ones."""
    source = config.source
    new_app = source.start in ("bootstrap", "auto") and factory.takes_snapshots()
    on_trim = source.on_trimmed == "rebootstrap" and factory.takes_fresh_snapshots()
    if not (new_app or on_trim):
        return None
    margin_ms = round(source.bootstrap.margin.total_seconds() * 1000)
    return SnapshotRequest(source.bootstrap.segments, margin_ms, new_app=new_app, on_trim=on_trim)


async def discover_tables(dynamodb: Any, patterns: Sequence[str]) -> list[tuple[str, str]]:
    """(table, latest stream ARN) of every table matching a pattern whose stream is on."""
    names: list[str] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = await dynamodb.list_tables(**kwargs)
        names += page.get("TableNames", [])
        last = page.get("LastEvaluatedTableName")
        if not last:
            break
        kwargs["ExclusiveStartTableName"] = last
    found: list[tuple[str, str]] = []
    for name in sorted(names):
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            continue
        table = (await dynamodb.describe_table(TableName=name))["Table"]
        arn = table.get("LatestStreamArn")
        enabled = table.get("StreamSpecification", {}).get("StreamEnabled", False)
        if arn and enabled:
            found.append((name, arn))
    return found
