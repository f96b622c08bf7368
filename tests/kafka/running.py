"""A worker configured for the Kafka tests: one worker, quick polls and lease cycles."""

from __future__ import annotations

import uuid
from typing import Any

import boto3

from bridge.config import BridgeConfig
from bridge.local.processes import KafkaBroker


def dynamodb(endpoint_url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")


def kafka_config(
    endpoint_url: str,
    table: str,
    broker: KafkaBroker,
    *,
    options: dict[str, Any] | None = None,
    processor: dict[str, Any] | None = None,
    coordination: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
) -> BridgeConfig:
    """One worker, quick polls and lease cycles, ``processor.kind: kafka``."""
    return BridgeConfig.model_validate(
        {
            "app": f"kafka-{uuid.uuid4().hex[:8]}",
            "worker_id": "worker-1",
            "source": {"table": table, "endpoint_url": endpoint_url, **(source or {})},
            "coordination": {
                "lease_duration": "6s",
                "take_interval": "100ms",
                "shard_sync_interval": "5s",
                **(coordination or {}),
            },
            "polling": {"interval": "20ms", "idle_interval": "200ms", "max_records": 1000},
            "processor": {
                "kind": "kafka",
                "options": {"bootstrap_servers": broker.bootstrap_servers, **(options or {})},
                **(processor or {}),
            },
            "metrics": {"port": 0},
        }
    )
