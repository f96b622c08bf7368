"""Fixtures for the Kafka processor's tests: topics on the shared broker, a broker of one's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.local.processes import KafkaBroker
from tests.kafka.topic_reader import create_topic


@pytest.fixture
def make_topic(kafka_broker: KafkaBroker) -> Callable[..., str]:
    """``make_topic(partitions=3)``: a fresh topic on the session's broker."""

    def make(prefix: str = "t", partitions: int = 3) -> str:
        return create_topic(kafka_broker.bootstrap_servers, prefix, partitions)

    return make


@pytest.fixture
def own_broker(server_logs: Path) -> Iterator[KafkaBroker]:
    """A broker for this test alone, for tests that freeze it (SIGSTOP) or stop it."""
    broker = KafkaBroker(log_dir=server_logs).start()
    try:
        yield broker
    finally:
        broker.stop()  # sends SIGCONT first, so a frozen broker stops too
