"""``processor.options`` of ``kind: kafka``, checked at start, and the producer settings."""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.config.durations import Duration
from bridge.processors.kafka._errors import KafkaStartupError

TEMPLATE_FIELDS = frozenset({"table"})

# What the delivery guarantee rests on; a user setting that contradicts it is refused.
REQUIRED = {"enable.idempotence": "true", "acks": "all"}
_ACKS_ALL = {"all", "-1"}
# Defaults a user may override. murmur2 is the Java client's partitioner: the same key lands
# in the same partition whichever client wrote it.
DEFAULTS = {"partitioner": "murmur2_random", "linger.ms": "5"}
# Set by the factory itself, never from YAML.
_RESERVED = {"bootstrap.servers", "error_cb", "logger", "on_delivery", "throttle_cb", "stats_cb"}


class KafkaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str | list[str]
    """``host:port`` of one or more brokers (a comma-separated string or a list)."""
    topic: str = "{table}"
    """Topic name template; ``{table}`` is the source table's name."""
    tombstones: bool = False
    """Follow each REMOVE envelope with a tombstone (same key, null value) for compacted topics."""
    include_old_image: bool = True
    """Put the old image in the envelope's ``old`` (when the stream view has it); else null."""
    format: Literal["bridge", "debezium"] = "bridge"
    """The message value: bridge's envelope (docs/kafka.md), or Debezium's change-event
    envelope (``before``, ``after``, ``op``, ``source``) for consumers that speak Debezium."""
    types: bool = False
    """Add ``types`` to the envelope: the keys and images in DynamoDB JSON, as the stream sent
    them, so that a reader (``bridge replica``) knows every value's type and exact number.
    Off by default: it about doubles the size of a message."""
    producer: dict[str, Any] = Field(default_factory=dict)
    """Extra librdkafka settings, e.g. ``{compression.type: lz4, security.protocol: SSL}``."""
    startup_timeout: Duration = timedelta(seconds=10)
    """How long ``open`` waits for the broker to answer before failing."""
    flush_timeout: Duration = timedelta(seconds=30)
    """How long closing waits for messages still queued (normally none: batches wait for acks)."""

    @field_validator("topic")
    @classmethod
    def _known_fields(cls, topic: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(topic) if name is not None}
        except ValueError as exc:
            raise ValueError(f"bad topic template {topic!r}: {exc}") from None
        unknown = fields - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(
                f"topic template {topic!r} uses {', '.join(sorted(unknown))}; "
                "only {table} is known"
            )
        return topic

    @field_validator("producer")
    @classmethod
    def _guarantees_kept(cls, settings: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(_RESERVED & settings.keys())
        if reserved:
            raise ValueError(f"producer.{reserved[0]} is set by bridge (use bootstrap_servers)")
        idempotence = _text(settings.get("enable.idempotence", "true"))
        if idempotence != "true":
            raise ValueError("producer.enable.idempotence must stay true (no duplicates, in order)")
        acks = _text(settings.get("acks", "all"))
        if acks not in _ACKS_ALL:
            raise ValueError(
                "producer.acks must stay all: a change counts as delivered only once every "
                "in-sync replica has it"
            )
        return settings

    @property
    def servers(self) -> str:
        if isinstance(self.bootstrap_servers, str):
            return self.bootstrap_servers
        return ",".join(self.bootstrap_servers)

    def topic_for(self, table: str) -> str:
        return self.topic.format(table=table)

    def producer_config(self, client_id: str) -> dict[str, str]:
        user = {name: _text(value) for name, value in self.producer.items()}
        return {
            "client.id": client_id,
            **DEFAULTS,
            **user,
            **REQUIRED,
            "bootstrap.servers": self.servers,
        }


def parse_options(options: Mapping[str, Any]) -> KafkaOptions:
    try:
        return KafkaOptions.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'options'}: {error['msg']}"
            for error in exc.errors()
        )
        raise KafkaStartupError(
            f"processor.kind 'kafka': bad processor.options: {problems}"
        ) from None


def _text(value: Any) -> str:
    """librdkafka takes strings; YAML gives booleans and numbers too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
