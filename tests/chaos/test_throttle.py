"""Scenario 11: GetRecords (and DescribeStream) throttled and failing under load.

``bridge local`` throttles the Streams API only (its control API has no switch for the lease
table), so this pins down that a worker whose reads keep failing still renews its leases on
time: no lease changes hands, no cascade of expiries, nothing lost.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding, check


@pytest.mark.slow
def test_streams_throttled_renewals_keep_their_leases(chaos: Callable[..., ChaosRun]) -> None:
    run = chaos("GetRecords throttled", rotate_records=400)
    app = run.kafka_app()
    for name in ("w1", "w2", "w3"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    run.hold(2 * run.timing.take_interval + 1, "the cluster to settle")
    owners = app.owners()
    run.local.throttle(rate=0.8, seconds=12)
    run.hold(6, "reads being throttled")
    run.local.throttle(rate=0.5, seconds=6, kind="error")
    run.hold(8, "reads failing with 5xx")
    assert app.log_events("transient stream error; backing off"), "nothing was throttled"
    lost = app.log_events("lease lost")
    assert not lost, f"leases lost while only the Streams API was throttled: {lost[:3]}"
    moved = {  # a finished shard's lease gives its owner up: that is not a move
        k: (owners[k], o) for k, o in app.owners().items() if o and owners.get(k) not in (None, o)
    }
    assert not moved, f"leases changed hands under throttling: {moved}"
    check(run)
