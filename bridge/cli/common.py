"""Pieces every subcommand shares: exit codes, the config option, loading with a clear error."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import typer

from bridge.config import BridgeConfig, ConfigError, load_config
from bridge.logs import configure_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


@dataclass
class _CliState:
    log_level: str = "info"
    log_json: bool | None = None


state = _CliState()

ConfigOption = typer.Option(
    ...,
    "--config",
    "-c",
    envvar="BRIDGE_CONFIG",
    help="Path to bridge.yaml. Every key can be overridden by BRIDGE_<SECTION>__<KEY>.",
    show_envvar=True,
)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def fail_to_start(error: BaseException, code: int) -> NoReturn:
    """A start-up error as its one line; ``--log-level debug`` shows its traceback first."""
    if state.log_level == "debug":
        traceback.print_exception(error)
    fail(str(error), code)


def load_or_exit(path: Path) -> BridgeConfig:
    """Load the configuration and re-bind logging to its app and worker id."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    configure_logging(state.log_level, app=config.app, worker=config.worker_id, json=state.log_json)
    return config
