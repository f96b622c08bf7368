"""``bridge query``: SQL against the local SQLite replica, refused while it is not ready."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from bridge.cli.common import EXIT_BAD_INPUT, ConfigOption, fail, load_or_exit


def query(
    sql: str = typer.Argument(..., help='A SELECT, e.g. "SELECT * FROM orders LIMIT 10".'),
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print rows as a JSON array."),
    stale_ok: bool = typer.Option(
        False, "--stale-ok", help="Answer even when the replica is not ready (may be stale)."
    ),
) -> None:
    """Run a read-only query on the replica named by ``processor.options.path`` (or by
    ``sqlite.path`` of a ``bridge replica`` configuration).

    Refuses (exit 1) while the replica is bootstrapping, lagging past ``ready_lag`` or its
    writer has stopped, unless --stale-ok.
    """
    import sqlite3

    from bridge.processors.sqlite import Replica, ReplicaNotReadyError

    try:
        replica = Replica(_replica_path(config))
    except FileNotFoundError as exc:
        fail(str(exc))
    with replica:
        if not stale_ok:
            try:
                replica.ensure_ready()
            except ReplicaNotReadyError as exc:
                fail(f"{exc} (use --stale-ok to read it anyway)")
        try:
            rows = replica.query(sql)
        except sqlite3.Error as exc:
            fail(f"query failed: {exc}", EXIT_BAD_INPUT)
    _print(rows, as_json)


def _replica_path(config: Path) -> str:
    """``processor.options.path`` of a bridge.yaml, or ``sqlite.path`` of a replica.yaml."""
    from bridge.replica import ConfigError, is_replica_config, load_replica_config

    if is_replica_config(config):
        try:
            return str(load_replica_config(config).sqlite.path)
        except ConfigError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
    settings = load_or_exit(config)
    if settings.processor.kind != "sqlite" or "path" not in settings.processor.options:
        fail("bridge query needs processor.kind: sqlite with options.path", EXIT_BAD_INPUT)
    return str(settings.processor.options["path"])


def _print(rows: Sequence[object], as_json: bool) -> None:
    import sqlite3

    records = [dict(row) for row in rows if isinstance(row, sqlite3.Row)]
    if as_json:
        import orjson

        typer.echo(orjson.dumps(records, default=_jsonable, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for column in records[0].keys() if records else []:
        table.add_column(column)
    for record in records:
        table.add_row(*(_text(value) for value in record.values()))
    Console().print(table)
    typer.echo(f"{len(records)} row(s)", err=True)


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError


def _text(value: object) -> str:
    return "NULL" if value is None else str(value)
