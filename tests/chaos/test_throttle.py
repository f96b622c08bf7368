"""Scenario 11: the lease table and GetRecords throttled and failing under load.

Renewals must keep their priority: a throttled checkpoint, scan or heartbeat must not stand in
a renewal's way, and a throttled renewal is retried at once rather than a renew interval later.
So no lease changes hands, nothing is lost, and no duplicate appears (there is no fault window
to explain one: every worker stays up and keeps its leases).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.chaos.harness import ChaosApp, ChaosRun
from tests.chaos.scenarios import all_holding, check


@pytest.mark.slow
def test_throttled_lease_table_and_reads_cost_no_lease(chaos: Callable[..., ChaosRun]) -> None:
    run = chaos("lease table + GetRecords throttled", rotate_records=400)
    app = run.kafka_app()
    for name in ("w1", "w2", "w3"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    run.hold(2 * run.timing.take_interval + 1, "the cluster to settle")
    owners = app.owners()
    settled = app.log_events("lease lost")  # the start's rebalancing may have stolen one
    coordination = [app.lease_table, f"{app.lease_table}-coordination"]

    run.local.throttle(rate=0.8, seconds=8)
    run.hold(4, "reads being throttled")
    run.local.throttle(rate=0.5, seconds=12, tables=coordination)
    run.hold(12, "the lease table being throttled")
    run.local.throttle(rate=0.3, seconds=6, kind="error", tables=coordination)
    run.hold(6, "the lease table failing with 5xx")
    run.local.throttle(rate=0.5, seconds=6, kind="error")
    run.hold(6, "reads failing with 5xx")

    assert app.log_events("transient stream error; backing off"), "no read was throttled"
    assert run.local.stats()["table_faults"]["injected"] > 50, "the lease table was not hit"
    assert_kept(app, owners, settled)
    check(run)


def assert_kept(
    app: ChaosApp, owners: dict[str, str | None], settled: list[dict[str, Any]]
) -> None:
    """No lease lost but the ``settled`` losses (before the faults), none moved from its owner
    in ``owners``."""
    lost = [event for event in app.log_events("lease lost") if event not in settled]
    assert not lost, f"leases lost while only throttled: {lost[:3]}"
    moved = {  # a finished shard's lease gives its owner up: that is not a move
        k: (owners[k], o) for k, o in app.owners().items() if o and owners.get(k) not in (None, o)
    }
    assert not moved, f"leases changed hands under throttling: {moved}"
