"""``bridge local``: a local DynamoDB + Streams + S3 endpoint (and a Kafka broker) to try on.

Streams behave like the real service (shards that rotate, expiring iterators, retention,
throttling) so what works here has met the failure modes it will meet in AWS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from bridge import eventloop
from bridge.cli.common import EXIT_BAD_INPUT, fail
from bridge.config import parse_duration

if TYPE_CHECKING:
    from bridge.local.processes import KafkaBroker
    from bridge.local.server import LocalServer
    from bridge.local.settings import LocalSettings


def _seconds(option: str, value: str) -> float:
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        fail(f"{option}: {exc}, got {value!r}", EXIT_BAD_INPUT)


def local(
    *,
    port: int = typer.Option(8000, "--port", "-p", help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    shards: int = typer.Option(4, "--shards", min=1, help="Open shards per new stream."),
    max_open_shards: int = typer.Option(
        0, "--max-open-shards", min=0, help="Cap on open shards per stream (0: 2 x --shards)."
    ),
    rotate_records: int = typer.Option(
        0, "--rotate-records", min=0, help="Close a shard after this many records (0: never)."
    ),
    rotate_seconds: str = typer.Option(
        "4h", "--rotate-seconds", help="Close a shard after this long (0: never), e.g. 30s."
    ),
    retention: str = typer.Option("24h", "--retention", help="Trim records older than this."),
    iterator_ttl: str = typer.Option("15m", "--iterator-ttl", help="Shard iterator lifetime."),
    throttle_rate: float = typer.Option(
        0.0,
        "--throttle-rate",
        min=0.0,
        max=1.0,
        help="Fraction of GetRecords/DescribeStream calls answered LimitExceededException.",
    ),
    error_rate: float = typer.Option(
        0.0,
        "--error-rate",
        min=0.0,
        max=1.0,
        help="Fraction of GetRecords/DescribeStream calls answered HTTP 500/503.",
    ),
    latency: str = typer.Option("0", "--latency", help="Extra delay on every Streams call."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for repeatable fault injection."),
    kafka: bool = typer.Option(False, "--kafka", help="Also start a local Kafka broker (tansu)."),
    kafka_port: int = typer.Option(0, "--kafka-port", min=0, help="Kafka port (0: any free)."),
) -> None:
    """Run a local DynamoDB + DynamoDB Streams + S3 endpoint until Ctrl+C or SIGTERM."""
    from bridge.local.emulator import FaultSettings, StreamSettings
    from bridge.local.settings import LocalSettings

    try:
        settings = LocalSettings(
            host=host,
            port=port,
            streams=StreamSettings(
                shards=shards,
                max_open_shards=max_open_shards,
                rotate_records=rotate_records,
                rotate_seconds=_seconds("--rotate-seconds", rotate_seconds),
                retention_seconds=_seconds("--retention", retention),
                iterator_ttl_seconds=_seconds("--iterator-ttl", iterator_ttl),
            ),
            faults=FaultSettings(
                throttle_rate=throttle_rate,
                error_rate=error_rate,
                latency_seconds=_seconds("--latency", latency),
                seed=seed,
            ),
        )
    except ValueError as exc:
        fail(str(exc), EXIT_BAD_INPUT)

    with eventloop.stop_signals():
        _serve(settings, kafka=kafka, kafka_port=kafka_port)
    typer.echo("bridge local: stopped", err=True)


def _serve(settings: LocalSettings, *, kafka: bool, kafka_port: int) -> None:
    """Start, serve until a stop is requested, stop. A request that arrives while a server is
    starting is honoured as soon as that start returns: stopping a child half started could
    leave it running unseen."""
    from bridge.local.processes import KafkaBroker, ServerStartError
    from bridge.local.server import LocalServer

    if eventloop.stop_requested() is not None:
        return
    server = LocalServer(settings)
    try:
        server.start()
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc}")
    broker: KafkaBroker | None = None
    try:
        if kafka and eventloop.stop_requested() is None:
            broker = KafkaBroker(port=kafka_port or None)
            broker.start()
        if eventloop.stop_requested() is None:
            _announce(server, broker)
            eventloop.wait_for_stop()
    except ServerStartError as exc:
        fail(str(exc))
    finally:
        if broker is not None:
            broker.stop()
        server.stop()


def _announce(server: LocalServer, broker: KafkaBroker | None) -> None:
    streams = server.settings.streams
    url = server.endpoint_url
    lines = [
        f"DynamoDB, DynamoDB Streams and S3: {url}",
        f"  streams: {streams.shards} shards, rotate after "
        f"{streams.rotate_records or 'unlimited'} records or {streams.rotate_seconds:g}s, "
        f"retention {streams.retention_seconds:g}s, iterator TTL {streams.iterator_ttl_seconds:g}s",
        f"  control: {url}/_bridge/{{rotate,clock,trim,throttle,append,stats,capacity}}",
    ]
    if broker is not None:
        lines.append(f"Kafka: {broker.bootstrap_servers}  (log: {broker.log_path})")
    lines.append("Press Ctrl+C to stop.")
    typer.echo("\n".join(lines))
