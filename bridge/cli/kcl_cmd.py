"""``bridge kcl check``: whether taking over a KCL application's lease table is safe."""

from __future__ import annotations

from pathlib import Path

import typer

from bridge import eventloop
from bridge.cli.common import EXIT_BAD_INPUT, ConfigOption, fail, load_or_exit

kcl_app = typer.Typer(help="Move from the Kinesis Client Library.", no_args_is_help=True)


@kcl_app.command("check")
def check(
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Say what taking over the lease table (coordination.lease_table) would do, writing nothing.

    For each lease: where bridge resumes, or why it cannot; for each shard without a lease:
    whether bridge leases it or skips it (KCL read it to its end); rows that are not leases
    are listed and left alone. Exits 2 when the takeover would read records again, lose
    records, or meet a checkpoint bridge cannot resume from (docs/migrating-from-kcl.md).
    """
    from bridge.kcl_check import check_takeover

    settings = load_or_exit(config)
    try:
        report = eventloop.run(check_takeover(settings))
    except Exception as exc:  # a table or stream that is not there, access denied
        fail(f"cannot check the takeover of {settings.lease_table}: {exc}")
    if as_json:
        import orjson

        document = {
            "lease_table": settings.lease_table,
            "safe": report.safe,
            "findings": [
                {"key": f.key, "verdict": str(f.verdict), "detail": f.detail}
                for f in report.findings
            ],
        }
        typer.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        for finding in report.findings:
            typer.echo(f"{finding.verdict:<8} {finding.key}: {finding.detail}")
        verdict = "safe" if report.safe else "NOT safe: it would replay or lose records"
        typer.echo(f"takeover of {settings.lease_table}: {verdict}")
    if not report.safe:
        raise typer.Exit(EXIT_BAD_INPUT)
