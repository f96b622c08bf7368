"""``processor.kind: kafka``: publish every change to a Kafka topic, in order per item.

One idempotent producer (acks=all) per worker is shared by the shards it owns. A batch is done,
and its checkpoint written, only once Kafka acknowledged every message of it. See
docs/kafka.md for the options, the envelope and the guarantees.
"""

from bridge.processors.kafka._envelope import EnvelopeEncoder, canonical_key
from bridge.processors.kafka._errors import (
    KafkaDeliveryError,
    KafkaStartupError,
    MessageTooLargeError,
)
from bridge.processors.kafka._options import KafkaOptions
from bridge.processors.kafka._processor import KafkaProcessor, KafkaProcessorFactory, KafkaStats

__all__ = [
    "EnvelopeEncoder",
    "KafkaDeliveryError",
    "KafkaOptions",
    "KafkaProcessor",
    "KafkaProcessorFactory",
    "KafkaStartupError",
    "KafkaStats",
    "MessageTooLargeError",
    "canonical_key",
]
