"""What the Kafka processor raises, and what each error means for the batch in hand."""

from __future__ import annotations

from bridge.processors.loader import ProcessorLoadError


class KafkaStartupError(ProcessorLoadError):
    """The broker cannot be reached, the topic does not exist, or the options are wrong.

    Raised by ``KafkaProcessorFactory`` at construction or from ``open``, before any lease is
    taken; the message names the broker and the topic.
    """


class KafkaDeliveryError(Exception):
    """Kafka did not acknowledge every message of the batch; the checkpoint does not move.

    ``retriable`` is False when sending the same message again cannot succeed (the record is
    at fault, not the broker); the runtime retries either way, then applies ``on_error``.
    """

    retriable = True

    def __init__(self, message: str, *, sequence_numbers: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.sequence_numbers = sequence_numbers
        """The records whose messages failed, as far as known."""


class MessageTooLargeError(KafkaDeliveryError):
    """A change's message is larger than the producer or the broker accepts.

    Never dropped silently: with ``on_error: dead_letter`` the record goes to the dead-letter
    file with this error as the reason; with ``on_error: stop`` the shard stops right before it.
    """

    retriable = False
