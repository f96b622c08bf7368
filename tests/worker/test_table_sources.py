"""Which table's stream a lease is for, with one table or several (``source.tables``)."""

from __future__ import annotations

from typing import Any

from bridge.config import BridgeConfig, SourceConfig
from bridge.core.lease_keys import StreamId, StreamKeys
from bridge.metrics import Metrics
from bridge.processors.api import PerShardFactory, ProcessorFactory
from bridge.processors.log import LogProcessor
from bridge.worker.table_sources import TableSources

LABEL = "2026-01-02T03:04:05.678"


def sources(**source: Any) -> tuple[TableSources, list[SourceConfig]]:
    made: list[SourceConfig] = []

    def make(narrowed: SourceConfig) -> ProcessorFactory:
        made.append(narrowed)
        return PerShardFactory(LogProcessor, {})

    config = BridgeConfig.model_validate({"app": "a", "source": source})
    return TableSources(config, Metrics("a", "*"), make), made


def test_several_tables_are_told_apart_by_their_lease_keys() -> None:
    tables, made = sources(tables=["orders", "config-*"])
    orders = StreamId("123456789012", "us-east-1", "orders", LABEL)
    config = StreamId("123456789012", "us-east-1", "config-eu", LABEL)
    users = StreamId("123456789012", "us-east-1", "users", LABEL)
    shard = "shardId-00000001700000000000-aaaa0001"
    found = tables.locate(orders.key(shard))
    assert found is not None and found.table == "orders" and found.stream_arn == orders.arn
    assert found.keys.name_of(orders.key(shard)) == shard
    assert tables.locate(config.key(shard)).table == "config-eu"  # type: ignore[union-attr]
    assert tables.locate(users.key(shard)) is None  # matches no pattern
    assert tables.locate(shard) is None  # a single-stream key: not this application's
    assert [s.name for s in made] == ["orders", "config-eu"]  # a factory per table, once
    assert tables.locate(orders.key("shardId-2")) is found
    tables.retire(found)
    assert tables.locate(orders.key(shard)) is None  # its stream is gone: left alone


def test_one_table_takes_the_leases_of_its_stream_only() -> None:
    tables, made = sources(table="orders")
    orders = StreamId("123456789012", "us-east-1", "orders", LABEL)
    single = tables.single(
        orders.arn, StreamKeys(orders, keyed=False), PerShardFactory(LogProcessor, {})
    )
    assert tables.locate("shardId-1") is single
    assert tables.locate(orders.key("shardId-1")) is None  # a KCL multi-stream row of another app
    assert made == []  # the worker's own factory serves the one table
