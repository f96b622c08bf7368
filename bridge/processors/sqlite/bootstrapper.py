"""Whether a start fills the replica with a scan of the table, and running that scan with a
DynamoDB client of its own.

The scan is the only part of the SQLite processor that talks to DynamoDB's table API (the rest
reads the stream through the worker), so the client lives only as long as the scan. The rules:
``start: bootstrap`` scans a file that has never been scanned; ``auto`` scans one that has
neither been scanned nor streamed into (no checkpoint); a scan a crash interrupted is always
finished, whatever ``start`` says, because the file is incomplete until it is; a file restored
from a snapshot is never scanned. The scan itself is ``TableScanner``'s (bootstrap.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aioboto3

from bridge.aws import client_kwargs
from bridge.config import SourceConfig
from bridge.processors.sqlite.bootstrap import (
    BootstrapError,
    BootstrapSettings,
    BootstrapState,
    TableScanner,
    read_state,
    replica_table,
)
from bridge.processors.sqlite.checkpoints import CheckpointStore
from bridge.processors.sqlite.readiness import ReadinessTracker
from bridge.processors.sqlite.schema import ReplicaTable
from bridge.processors.sqlite.writer import ReplicaWriter


class Bootstrapper:
    def __init__(
        self,
        *,
        writer: ReplicaWriter,
        checkpoints: CheckpointStore,
        readiness: ReadinessTracker,
        publish_status: Callable[[], Awaitable[object]],
        table_name: str,
        start: str,
        source: SourceConfig | None,
        settings: BootstrapSettings,
    ) -> None:
        self.writer = writer
        self.checkpoints = checkpoints
        self.readiness = readiness
        self.publish_status = publish_status
        self.table_name = table_name
        self.start = start
        self.source = source
        self.settings = settings
        self.table: ReplicaTable | None = None
        """The replica table the scan created, once it ran."""

    async def run_if_needed(self, *, restored: bool) -> BootstrapState | None:
        """Scan (or finish scanning) if the rules above say so; the file's scan state after,
        None for a file never scanned."""
        state = await self.writer.call(self._state)
        if state is None and not restored and await self._wanted():
            return await self._scan()
        if state is not None and not state.done:
            return await self._scan()  # resume the scan a crash interrupted
        return state

    async def _wanted(self) -> bool:
        if self.start == "bootstrap":
            return True
        return self.start == "auto" and not await self.checkpoints.any()

    def _state(self) -> BootstrapState | None:
        return read_state(self.writer.connection())

    async def _scan(self) -> BootstrapState:
        if self.source is None:
            raise BootstrapError("bootstrap needs the source settings (run it through bridge)")
        source = self.source
        self.readiness.phase = "bootstrapping"
        await self.publish_status()
        async with aioboto3.Session().client("dynamodb", **client_kwargs(source)) as client:
            try:
                described = await client.describe_table(TableName=source.name)
            except client.exceptions.ResourceNotFoundException:
                raise BootstrapError(
                    f"cannot bootstrap: table {source.name} does not exist"
                ) from None
            table = replica_table(described["Table"], self.table_name)
            scanner = TableScanner(
                client=client,
                source_table=source.name,
                table=table,
                call=self.writer.call,
                db=self.writer.connection,
                settings=self.settings,
                estimated_items=described["Table"].get("ItemCount"),
            )
            state = await scanner.run()
        self.table = table
        self.readiness.phase = "streaming"
        return state
