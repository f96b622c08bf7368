"""The Kafka tests' fixtures (a topic on the session's broker, a broker of one's own)."""

from tests.kafka.conftest import make_topic, own_broker

__all__ = ["make_topic", "own_broker"]
