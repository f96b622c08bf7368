"""``bridge status``: leases, owners, checkpoints and the leader, read from the lease table."""

from __future__ import annotations

from pathlib import Path

import typer

from bridge import eventloop
from bridge.cli.common import ConfigOption, fail, load_or_exit


def status(
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Show every lease (shard, owner, counter, checkpoint, parents, state) and the leader.

    Reads the lease and lock tables directly, so it works from any machine with read access,
    whether or not a worker is running.
    """
    from bridge.status import LeaseTableMissingError, read_status

    settings = load_or_exit(config)
    try:
        cluster = eventloop.run(read_status(settings))
    except LeaseTableMissingError as exc:
        fail(str(exc))
    if as_json:
        import orjson

        typer.echo(orjson.dumps(cluster.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{cluster.app}: {len(cluster.leases)} leases in {cluster.lease_table}")
    for column in ("shard", "owner", "counter", "checkpoint", "parents", "state"):
        table.add_column(column)
    for row in cluster.leases:
        table.add_row(
            row.shard,
            row.owner or "-",
            str(row.counter),
            row.checkpoint or "-",
            ", ".join(row.parents) or "-",
            row.state,
        )
    console = Console()
    console.print(table)
    console.print(f"leader: {cluster.leader or '(none)'}")
    console.print(f"workers holding leases: {', '.join(cluster.workers) or '(none)'}")
