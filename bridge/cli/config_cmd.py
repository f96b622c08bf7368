"""``bridge config check``: validate a configuration and show what it resolves to."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from bridge.cli.common import ConfigOption, load_or_exit
from bridge.config import resolved_view

config_app = typer.Typer(help="Inspect configuration files.", no_args_is_help=True)


@config_app.command("check")
def check(
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Validate a configuration file (with BRIDGE_ overrides) and print it resolved, secrets masked.

    Exits 2 with a message naming each bad key when the configuration cannot be used.
    """
    view = resolved_view(load_or_exit(config))
    if as_json:
        import orjson

        typer.echo(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(yaml.safe_dump(view, sort_keys=False).rstrip())
