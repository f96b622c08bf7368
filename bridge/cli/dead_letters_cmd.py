"""``bridge dead-letters replay``: the records given up on, through the processor again."""

from __future__ import annotations

from pathlib import Path

import typer

from bridge import eventloop
from bridge.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, ConfigOption, fail, load_or_exit

dead_letters_app = typer.Typer(
    help="The records on_error: dead_letter gave up on.", no_args_is_help=True
)


@dead_letters_app.command("replay")
def replay(config: Path = ConfigOption) -> None:
    """Hand the dead letters (processor.dead_letter) to the processor again, shard by shard in
    stream order; take off the destination those that went through. Exits 1 if any failed
    again (they stay for the next replay)."""
    from bridge.dead_letter_replay import ReplayRefusedError
    from bridge.dead_letter_replay import replay as run_replay

    settings = load_or_exit(config)
    try:
        result = eventloop.run(run_replay(settings))
    except ReplayRefusedError as exc:
        fail(f"cannot replay the dead letters: {exc}", EXIT_BAD_INPUT)
    typer.echo(f"replayed {result.replayed} dead letter(s)")
    if result.failed:
        typer.echo(f"failed again, kept: {', '.join(result.failed)}", err=True)
        raise typer.Exit(EXIT_FAILURE)
