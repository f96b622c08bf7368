"""Scenario 7: a poison record (a change too large for the producer's message.max.bytes):
bounded retries, then the dead-letter file gets exactly that record, and its shard moves on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding, check


@pytest.mark.slow
def test_poison_record_goes_to_the_dead_letter_file(chaos: Callable[..., ChaosRun]) -> None:
    run = chaos("poison -> dead letter (kafka)", rotate_records=400)
    app = run.kafka_app(
        producer={"message.max.bytes": 20_000},
        processor={"on_error": "dead_letter", "max_attempts": 2},
    )
    for name in ("w1", "w2"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    run.poison.append(run.generator.write_poison("poison-0001", payload_bytes=40_000))
    run.wait_for(
        lambda: app.dead_letter_path.exists() and app.dead_letter_path.read_bytes().count(b"\n"),
        60,
        "the poison record in the dead-letter file",
    )
    run.wait_for_writes(200)  # the shard moved on: the checker wants these in the topic
    check(run)
