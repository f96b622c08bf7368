"""Settings of one ``bridge local`` endpoint: where it listens and how its streams behave."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.local.emulator import FaultSettings, StreamSettings


@dataclass(frozen=True)
class LocalSettings:
    host: str = "127.0.0.1"
    """Interface to listen on; loopback unless you mean to share the endpoint."""

    port: int = 0
    """Port to listen on; 0 picks a free one (read it back from ``LocalServer.port``)."""

    streams: StreamSettings = field(default_factory=StreamSettings)
    """Shards, rotation, retention and iterator lifetime of every stream."""

    faults: FaultSettings = field(default_factory=FaultSettings)
    """Throttling, server errors and latency injected into Streams calls."""
