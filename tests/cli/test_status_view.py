"""What ``bridge status`` makes of lease rows, without AWS: lag cells, staleness, the summary."""

from __future__ import annotations

from rich.console import Console

from bridge.cli.status_cmd import format_ms, render, summary_line
from bridge.core.leasing import LagReading, Lease
from bridge.status import build_status

NOW_MS = 1_700_000_000_000


def test_lag_is_fresh_stale_or_absent() -> None:
    cluster = build_status(
        app="orders",
        lease_table="orders-leases",
        leases=[
            Lease("fresh", owner="w1", counter=3, checkpoint="10", lag=LagReading(1200, NOW_MS)),
            Lease("stale", owner="w2", counter=9, lag=LagReading(40, NOW_MS - 60_000)),
            Lease("done", owner="w1", checkpoint="SHARD_END", lag=LagReading(5, NOW_MS)),
            Lease("child", parents=frozenset(["done"])),
        ],
        leader="w1",
        registered_workers=["w3", "w1", "w2"],
        now_ms=NOW_MS,
        stale_after_ms=10_000,
    )
    rows = {row.shard: row for row in cluster.leases}
    assert (rows["fresh"].lag_ms, rows["fresh"].lag_age_ms, rows["fresh"].lag_stale) == (
        1200,
        0,
        False,
    )
    assert rows["fresh"].lag_measured_at == "2023-11-14T22:13:20.000+00:00"
    assert (rows["stale"].lag_ms, rows["stale"].lag_age_ms, rows["stale"].lag_stale) == (
        40,
        60_000,
        True,
    )
    assert rows["done"].lag_ms is None and rows["done"].lag_measured_at is None
    assert rows["child"].lag_ms is None and not rows["child"].lag_stale

    summary = cluster.summary
    assert (summary.leases, summary.owned, summary.free, summary.finished) == (4, 2, 1, 1)
    assert (summary.workers, summary.registered_workers, summary.leader) == (2, 3, "w1")
    assert (summary.max_lag_ms, summary.stale_lags) == (1200, 1)
    assert cluster.registered_workers == ["w1", "w2", "w3"]

    console = Console(width=200, record=True)
    console.print(render(cluster))
    text = console.export_text()
    assert "1.2s" in text and "40ms (stale: 1m00s old)" in text
    assert "4 total, 2 owned, 1 free, 1 finished" in text and "max lag: 1.2s (1 stale)" in text


def test_an_empty_table_has_no_max_lag() -> None:
    cluster = build_status(
        app="orders",
        lease_table="orders-leases",
        leases=[],
        leader=None,
        registered_workers=[],
        now_ms=NOW_MS,
        stale_after_ms=10_000,
    )
    assert summary_line(cluster.summary) == (
        "leases: 0 total, 0 owned, 0 free, 0 finished | workers: 0 holding leases, "
        "0 registered | leader: (none) | max lag: -"
    )


def test_durations_are_short_enough_for_a_cell() -> None:
    assert [format_ms(ms) for ms in (0, 999, 1000, 1249, 59_949, 245_000, 7_620_000)] == [
        "0ms",
        "999ms",
        "1.0s",
        "1.2s",
        "59.9s",
        "4m05s",
        "2h07m",
    ]
