"""``bridge demo``: the whole path on the embedded default, nothing to set up."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import typer

from bridge import eventloop
from bridge.cli.common import fail, state
from bridge.logs import configure_logging

if TYPE_CHECKING:
    from rich.console import Console

    from bridge.demo import DemoOptions, DemoSummary


def demo(
    *,
    writes: int = typer.Option(
        2_000, "--writes", min=1, help="Changes to write to the demo table."
    ),
    keys: int = typer.Option(100, "--keys", min=1, help="Distinct items the changes go to."),
    rate: float = typer.Option(500.0, "--rate", min=1.0, help="Writes per second."),
    rotate_records: int = typer.Option(
        250, "--rotate-records", min=1, help="Shards close and split after this many records."
    ),
    show_changes: bool = typer.Option(
        False, "--show-changes", help="Log every change as it is published."
    ),
) -> None:
    """Publish a table's changes to Kafka, all on this machine: a local DynamoDB + Streams
    endpoint and Kafka broker, a demo table under writes, and a worker.

    Shards rotate every --rotate-records records, as they do in AWS, and the worker follows
    the lineage. At the end the demo reads the topic back and checks that every change is
    there once and in order per item, and exits 1 if not. Ctrl-C or SIGTERM stops it early:
    the worker hands its leases back, the endpoint and the broker stop, and it exits 1, as
    nothing was checked.
    """
    from rich.console import Console

    from bridge.demo import DemoOptions

    configure_logging(state.log_level, app="bridge-demo", json=state.log_json)
    options = DemoOptions(
        writes=writes,
        keys=keys,
        rate=rate,
        rotate_records=rotate_records,
        show_changes=show_changes,
    )
    with eventloop.stop_signals():
        summary = _run(options, Console(stderr=True))
    if summary is None:
        signum = eventloop.stop_requested() or signal.SIGINT
        fail(f"interrupted by {signal.Signals(signum).name}: the demo stopped before its check")
    _report(summary)


def _run(options: DemoOptions, console: Console) -> DemoSummary | None:
    """The demo's summary, or None when a stop request ended it first. Each child starts only
    while no stop is requested, and every child started is stopped, whatever happens."""
    from bridge.demo import run_demo
    from bridge.local.endpoint import LocalEndpoint
    from bridge.local.processes import KafkaBroker, ServerStartError

    endpoint = LocalEndpoint(rotate_records=options.rotate_records, shards=4)
    broker = KafkaBroker()
    try:
        for child in (endpoint, broker):
            if eventloop.stop_requested() is not None:
                return None
            child.start()
        console.print(f"bridge local (DynamoDB + Streams) at [bold]{endpoint.endpoint_url}[/]")
        console.print(f"Kafka broker at [bold]{broker.bootstrap_servers}[/]")
        demo = run_demo(options, endpoint, broker.bootstrap_servers)
        return eventloop.run(demo, grace=STOP_GRACE)
    except eventloop.Interrupted:
        return None
    except ServerStartError as exc:
        fail(str(exc))
    finally:
        broker.stop()
        endpoint.stop()


STOP_GRACE = 40.0
"""The demo worker's drain (30 s at most) and its lease release fit in it."""


def _report(summary: DemoSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bridge demo", show_header=False)
    for name, value in [
        ("changes written", summary.written),
        ("changes published (acked)", summary.applied),
        (f"messages in topic {summary.topic!r}", summary.in_topic),
        ("duplicates", summary.duplicates),
        ("out of order (per item)", summary.out_of_order),
        ("records lost", int(summary.records_lost)),
        ("shards read / in stream", f"{summary.shards_read} / {summary.shards_in_stream}"),
        ("GetRecords calls", int(summary.getrecords_calls)),
        ("seconds", f"{summary.seconds:.1f}"),
    ]:
        table.add_row(name, str(value))
    Console().print(table)
    if not summary.ok:
        fail("the demo saw missing, duplicate or reordered changes")
