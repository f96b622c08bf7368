"""``bridge demo``: the whole path on the embedded default, nothing to set up."""

from __future__ import annotations

import typer

from bridge import eventloop
from bridge.cli.common import fail, state
from bridge.logs import configure_logging


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
    there once and in order per item, and exits 1 if not.
    """
    from rich.console import Console
    from rich.table import Table

    from bridge.demo import DemoOptions, run_demo
    from bridge.local.endpoint import LocalEndpoint
    from bridge.local.processes import KafkaBroker

    configure_logging(state.log_level, app="bridge-demo", json=state.log_json)
    options = DemoOptions(
        writes=writes,
        keys=keys,
        rate=rate,
        rotate_records=rotate_records,
        show_changes=show_changes,
    )
    console = Console(stderr=True)
    with (
        LocalEndpoint(rotate_records=rotate_records, shards=4) as endpoint,
        KafkaBroker() as broker,
    ):
        console.print(f"bridge local (DynamoDB + Streams) at [bold]{endpoint.endpoint_url}[/]")
        console.print(f"Kafka broker at [bold]{broker.bootstrap_servers}[/]")
        summary = eventloop.run(run_demo(options, endpoint, broker.bootstrap_servers))
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
