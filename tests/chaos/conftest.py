"""Fixtures of the chaos suite: ``chaos(scenario, ...)`` builds a run, and every verdict goes
to the report table printed at the end of the session (and appended, as JSON lines, to the
file named by ``CHAOS_REPORT`` when set: ``scripts/chaos.py`` reads it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from tests.chaos.checker import Verdict, report_table
from tests.chaos.harness import ChaosRun, write_report_row

_VERDICTS: list[Verdict] = []
_ACTIVE: list[ChaosRun] = []


@pytest.fixture
def chaos(
    make_local_endpoint: Callable[..., LocalEndpoint],
    kafka_broker: KafkaBroker,
    tmp_path: Path,
) -> Iterator[Callable[..., ChaosRun]]:
    """``chaos("kill-9", shards=4, rotate_records=300, timing=..., rate=60)``: a fresh endpoint,
    table and topic on the session's broker (``kafka=`` another one)."""
    made: list[ChaosRun] = []

    def make(
        scenario: str,
        *,
        shards: int = 4,
        rotate_records: int = 300,
        kafka: KafkaBroker | None = None,
        endpoint: dict[str, Any] | None = None,
        **options: Any,
    ) -> ChaosRun:
        local = make_local_endpoint(
            shards=shards, max_open_shards=shards, rotate_records=rotate_records, **(endpoint or {})
        )
        run = ChaosRun(scenario, local, tmp_path, kafka=kafka or kafka_broker, **options)
        made.append(run)
        _ACTIVE.append(run)
        return run

    yield make
    for run in made:
        run.teardown()
        _ACTIVE.remove(run)
        if run.verdict is not None:
            _VERDICTS.append(run.verdict)
            report = os.environ.get("CHAOS_REPORT")
            if report:
                write_report_row(run.verdict, Path(report))


@pytest.fixture
def own_broker(server_logs: Path) -> Iterator[KafkaBroker]:
    """A broker for this test alone, for scenarios that freeze it."""
    broker = KafkaBroker(log_dir=server_logs).start()
    try:
        yield broker
    finally:
        broker.stop()  # sends SIGCONT first, so a frozen broker stops too


def soak_seconds(default: float = 60) -> float:
    """How long the soak runs: ``CHAOS_SOAK_SECONDS`` (set by ``scripts/chaos.py --duration``)."""
    return float(os.environ.get("CHAOS_SOAK_SECONDS", default))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed:
        for run in _ACTIVE:
            for app in run.apps.values():
                for worker in app.all_processes():
                    report.sections.append(
                        (f"{app.name} worker {worker.name} log (tail)", worker.log_tail())
                    )
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _VERDICTS:
        terminalreporter.section("chaos report")
        terminalreporter.write_line(report_table(v.as_json() for v in _VERDICTS))
