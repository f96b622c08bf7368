"""Scenario 5: one worker cut off from DynamoDB (a TCP proxy the test blackholes) while Kafka
stays reachable. Its leases expire for the others; it must give them up on its own clock
first (before anyone else may take them), and never write a checkpoint after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding, check, taken_over
from tests.support.tcp_proxy import TcpProxy


def wall(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
def test_worker_cut_off_from_dynamodb_gives_up_first(chaos: Callable[..., ChaosRun]) -> None:
    run = chaos("cut off from DynamoDB (kafka)", rotate_records=0, shards=6)
    app = run.kafka_app(after_delivery=0.1)
    with TcpProxy(run.local.port) as proxy:
        app.start_worker("w1")
        app.start_worker("w2")
        app.start_worker(
            "cut", env={"BRIDGE_SOURCE__ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
        )
        run.start()
        all_holding(run, app)
        run.hold(3 * run.timing.take_interval + 1, "the cluster to settle")
        held = set(app.held_by("cut"))
        assert held
        with run.fault("partition", "cut"):
            proxy.blackhole()
            taken_over(run, app, "cut", within=60)
            run.wait_for(
                lambda: (
                    {
                        e["shard"]
                        for e in app.workers["cut"].log_events()
                        if e.get("event") == "lease lost"
                    }
                    >= held
                ),
                30,
                "the cut worker giving up every lease",
            )
            history = {shard: list(rows) for shard, rows in app.history.rows.items()}
            proxy.heal()
        lost = {
            e["shard"]: wall(e)
            for e in app.workers["cut"].log_events()
            if e.get("event") == "lease lost"
        }
        taken = {
            e["shard"]: wall(e)
            for e in app.log_events("lease taken")
            if e.get("previous_owner") == "cut"
        }
        early = {s: (lost[s], taken[s]) for s in held if s in taken and lost[s] > taken[s]}
        assert not early, f"a lease was taken before the cut worker gave it up: {early}"
        late_checkpoints = [
            (shard, sample)
            for shard, samples in history.items()
            for sample in samples
            if sample.owner == "cut" and shard in taken and sample.at > taken[shard]
        ]
        assert not late_checkpoints, late_checkpoints
        run.wait_for_writes(200)
        check(run)
