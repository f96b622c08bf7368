"""The ``bridge`` command line: its commands and the options before them."""

from __future__ import annotations

import signal

import typer

from bridge import __version__, eventloop
from bridge.cli.common import EXIT_BAD_INPUT, state
from bridge.cli.config_cmd import config_app
from bridge.cli.dead_letters_cmd import dead_letters_app
from bridge.cli.demo_cmd import demo
from bridge.cli.kcl_cmd import kcl_app
from bridge.cli.local_cmd import local
from bridge.cli.query_cmd import query
from bridge.cli.replica_cmd import replica
from bridge.cli.run_cmd import run
from bridge.cli.status_cmd import status
from bridge.logs import LEVELS, configure_logging

app = typer.Typer(
    name="bridge",
    help="Read DynamoDB Streams with a cluster of workers and apply every change to a processor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(kcl_app, name="kcl")
app.add_typer(dead_letters_app, name="dead-letters")
app.command("demo")(demo)
app.command("local")(local)
app.command("query")(query)
app.command("replica")(replica)
app.command("run")(run)
app.command("status")(status)

LONG_RUNNING = frozenset({"demo", "local", "replica", "run", "status"})
"""Commands that end cleanly on SIGINT and SIGTERM; the others keep Python's own handling."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    log_level: str = typer.Option(
        "info", "--log-level", envvar="BRIDGE_LOG_LEVEL", help=f"One of {', '.join(LEVELS)}."
    ),
    log_format: str = typer.Option(
        "auto", "--log-format", help="auto (console on a terminal, JSON otherwise), json, console."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if log_level.lower() not in LEVELS:
        typer.echo(f"--log-level: expected one of {', '.join(LEVELS)}, got {log_level!r}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if log_format not in {"auto", "json", "console"}:
        typer.echo(f"--log-format: expected auto, json or console, got {log_format!r}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    state.log_level = log_level.lower()
    state.log_json = None if log_format == "auto" else log_format == "json"
    configure_logging(state.log_level, json=state.log_json)
    if ctx.invoked_subcommand not in LONG_RUNNING:
        _default_signal_handling()


def _default_signal_handling() -> None:
    """A short command is simply interrupted, as any program would be: a signal that arrived
    while the command line was loading is delivered again under Python's own handling."""
    signum = eventloop.stop_requested()
    eventloop.restore_signals()
    if signum is not None:
        signal.raise_signal(signum)
