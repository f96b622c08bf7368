"""The stage every end-to-end benchmark runs on: a counting ``bridge local``, a Kafka broker,
tables with their topics, and ``bridge run`` workers, all torn down together."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from benchlib.cluster import (
    BenchWorker,
    Contender,
    Coordination,
    create_table,
    dynamodb,
    write_config,
)
from benchlib.endpoint import CountedEndpoint
from benchlib.traffic import create_topic
from bridge.local.processes import KafkaBroker


class Rig:
    def __init__(self, directory: Path, *, shards: int = 4, partitions: int = 4) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.endpoint = CountedEndpoint(log_dir=directory, shards=shards, max_open_shards=shards)
        self.broker = KafkaBroker(log_dir=directory)
        self.partitions = partitions
        self.workers: list[BenchWorker] = []
        self.ddb: Any = None

    def __enter__(self) -> Self:
        self.endpoint.start()
        try:
            self.broker.start()
        except BaseException:
            self.endpoint.stop()
            raise
        self.ddb = dynamodb(self.endpoint.endpoint_url)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop_for_teardown()
        self.broker.stop()
        self.endpoint.stop()

    def new_table(self, prefix: str) -> str:
        """A fresh table with a stream, and a topic of the same name for its changes."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        create_table(self.ddb, name)
        create_topic(self.broker.bootstrap_servers, name, self.partitions)
        return name

    def config(
        self, app: str, table: str, contender: Contender, coordination: Coordination
    ) -> Path:
        return write_config(
            self.directory / f"{app}.yaml",
            app=app,
            table=table,
            endpoint_url=self.endpoint.endpoint_url,
            bootstrap_servers=self.broker.bootstrap_servers,
            contender=contender,
            coordination=coordination,
        )

    def start_worker(self, name: str, config: Path) -> BenchWorker:
        worker = BenchWorker(name, config, self.directory / f"{name}.log")
        self.workers.append(worker)
        return worker


def warm_up(
    rig: Rig,
    arrivals: Any,
    tables: dict[str, str],
    workers: dict[str, BenchWorker],
    items: int = 16,
) -> None:
    """Write ``items`` to each table and wait until all arrived: every shard is leased and
    read before anything is timed (16 random keys reach each of a few shards almost surely)."""
    from benchlib.traffic import write_items

    for table in tables.values():
        write_items(rig.ddb, table, "warmup", items)
    for name, table in tables.items():
        if not arrivals.wait_for(table, "warmup", items, timeout=120):
            raise RuntimeError(f"{name}: warm-up items never arrived\n{workers[name].log_tail()}")
