"""Scenario 8: shards rotate every 150 records and on demand, under load, across three
workers: children wait for their parents, nothing is lost or reordered."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding, check


@pytest.mark.slow
def test_rotation_every_few_hundred_records(chaos: Callable[..., ChaosRun]) -> None:
    run = chaos("rotation every 150 (kafka)", rotate_records=150, rate=80)
    # Each batch spends a second in hand: parents fall behind the rotation, so their children
    # exist (and are leased) while the parents still have records to give, and only the
    # parents-first rule keeps each key in order.
    app = run.kafka_app(before_delivery=1.0)
    for name in ("w1", "w2", "w3"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    for _ in range(4):
        run.local.rotate(run.table)
        run.wait_for_writes(250)
    check(run)
