"""``bridge status``: leases, owners, checkpoints, lag and the leader, read from the lease table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bridge import eventloop
from bridge.cli.common import EXIT_BAD_INPUT, ConfigOption, fail, load_or_exit

if TYPE_CHECKING:
    from rich.console import Console, Group

    from bridge.config import BridgeConfig
    from bridge.status import ClusterStatus, LeaseRow, Summary


def status(
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    watch: bool = typer.Option(
        False,
        "--watch",
        "-w",
        help="Refresh until Ctrl-C; with --json, one JSON document per line per refresh.",
    ),
    interval: str = typer.Option(
        "2s", "--interval", "-n", help="How often --watch reads the tables (250ms, 2s, 1m)."
    ),
) -> None:
    """Show every lease (shard, owner, counter, checkpoint, parents, state, lag), the leader and
    a summary.

    Reads the lease and coordination tables directly, so it works from any machine with read
    access, whether or not a worker is running. The lag of a shard is its owner's last reading,
    written with its lease renewals; a reading older than three renewal intervals is stale
    (its owner stopped renewing or reading) and shown with its age.
    """
    from bridge.config.durations import parse_duration
    from bridge.status import LeaseTableMissingError, read_status, watch_status

    with eventloop.stop_signals():
        settings = load_or_exit(config)
        try:
            every = parse_duration(interval).total_seconds()
        except ValueError as exc:
            fail(f"--interval: {exc}", EXIT_BAD_INPUT)
        if every <= 0:
            fail("--interval must be longer than 0", EXIT_BAD_INPUT)
        try:
            if not watch:
                cluster = eventloop.run(read_status(settings), grace=STOP_GRACE)
                if as_json:
                    _print_json(cluster, indent=True)
                else:
                    _console().print(render(cluster))
                return
            if as_json:
                watching = watch_status(settings, every, _print_json, _report_error)
                eventloop.run(watching, grace=STOP_GRACE)
            else:
                _watch_table(settings, every)
        except LeaseTableMissingError as exc:
            fail(str(exc))
        except (eventloop.Interrupted, KeyboardInterrupt):
            raise typer.Exit(0) from None


STOP_GRACE = 3.0
"""A read in flight is cancelled at once; past this, a read that ignored it is cancelled again."""


def _watch_table(settings: BridgeConfig, every: float) -> None:
    from rich.live import Live

    from bridge.status import watch_status

    console = _console()
    if not console.is_terminal:  # piped: one table after another, nothing to redraw
        printing = watch_status(settings, every, lambda c: console.print(render(c)), _report_error)
        eventloop.run(printing, grace=STOP_GRACE)
        return
    with Live(console=console, auto_refresh=False) as live:

        def show(cluster: ClusterStatus) -> None:
            live.update(render(cluster), refresh=True)

        eventloop.run(watch_status(settings, every, show, _report_error), grace=STOP_GRACE)


def _print_json(cluster: ClusterStatus, indent: bool = False) -> None:
    import orjson

    option = orjson.OPT_INDENT_2 if indent else 0
    sys.stdout.write(orjson.dumps(cluster.as_dict(), option=option).decode() + "\n")
    sys.stdout.flush()


def _report_error(error: Exception) -> None:
    typer.secho(f"status read failed, retrying: {error}", fg=typer.colors.YELLOW, err=True)


def _console() -> Console:
    from rich.console import Console

    return Console()


def render(cluster: ClusterStatus) -> Group:
    """The table and the summary line, as one rich renderable (printed once, or live)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{cluster.app}: {len(cluster.leases)} leases in {cluster.lease_table}")
    several = any(row.table for row in cluster.leases)  # source.tables: say which table
    columns = ("table",) if several else ()
    for column in (*columns, "shard", "owner", "counter", "checkpoint", "parents", "state", "lag"):
        table.add_column(column, justify="right" if column in ("counter", "lag") else "left")
    for row in cluster.leases:
        table.add_row(
            *((row.table or "-",) if several else ()),
            row.shard,
            row.owner or "-",
            str(row.counter),
            row.checkpoint or "-",
            ", ".join(row.parents) or "-",
            row.state,
            _lag_cell(row),
        )
    return Group(
        table,
        Text(summary_line(cluster.summary)),
        Text(f"workers holding leases: {', '.join(cluster.workers) or '(none)'}"),
        Text(f"read at {cluster.read_at}", style="dim"),
    )


def summary_line(summary: Summary) -> str:
    lag = "-" if summary.max_lag_ms is None else format_ms(summary.max_lag_ms)
    stale = f" ({summary.stale_lags} stale)" if summary.stale_lags else ""
    return (
        f"leases: {summary.leases} total, {summary.owned} owned, {summary.free} free, "
        f"{summary.finished} finished | workers: {summary.workers} holding leases, "
        f"{summary.registered_workers} registered | leader: {summary.leader or '(none)'} | "
        f"max lag: {lag}{stale}"
    )


def _lag_cell(row: LeaseRow) -> str:
    if row.lag_ms is None:
        return "-"
    if row.lag_stale and row.lag_age_ms is not None:
        return f"{format_ms(row.lag_ms)} (stale: {format_ms(row.lag_age_ms)} old)"
    return format_ms(row.lag_ms)


def format_ms(millis: int) -> str:
    """``350ms``, ``1.2s``, ``4m05s``, ``2h07m``: short enough for a table cell."""
    if millis < 1000:
        return f"{millis}ms"
    if millis < 60_000:
        return f"{millis / 1000:.1f}s"
    seconds = millis // 1000
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
