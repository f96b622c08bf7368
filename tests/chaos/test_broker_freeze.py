"""Scenario 6: the Kafka broker frozen (SIGSTOP) for longer than the producer's message
timeout, then thawed: batches fail and are retried, checkpoints never pass what the broker
did not acknowledge; every change arrives, in order, duplicates only around the freeze."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from bridge.local.processes import KafkaBroker
from tests.chaos.harness import ChaosRun
from tests.chaos.scenarios import all_holding, check

MESSAGE_TIMEOUT_MS = 2_000
FREEZE = 7.0  # > 3x the message timeout


@pytest.mark.slow
def test_broker_frozen_past_the_message_timeout(
    own_broker: KafkaBroker, chaos: Callable[..., ChaosRun]
) -> None:
    run = chaos("kafka broker frozen (kafka)", rotate_records=400, kafka=own_broker)
    app = run.kafka_app(
        producer={"message.timeout.ms": MESSAGE_TIMEOUT_MS, "request.timeout.ms": 1_000}
    )
    for name in ("w1", "w2"):
        app.start_worker(name)
    run.start()
    all_holding(run, app)
    with run.fault("broker SIGSTOP", "kafka", linger=15):
        own_broker.signal(signal.SIGSTOP)
        frozen = time.monotonic()
        run.wait_for(
            lambda: bool(app.log_events("destination unavailable; the batch waits for it")),
            30,
            "a batch failing on the frozen broker",
        )
        run.wait_for(lambda: time.monotonic() - frozen >= FREEZE, 30, "the freeze to last")
        own_broker.signal(signal.SIGCONT)
    run.wait_for_writes(200)
    check(run)
