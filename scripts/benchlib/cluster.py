"""``bridge run`` workers with a Kafka processor: configuration, processes, their metrics.

Worker processes are tests/cluster's ``WorkerProcess`` (real OS processes, real signals);
this module adds what a benchmark needs on top: a configuration per contender, the worker's
metrics port (read from its log, since it asks for any free port) and a scrape of /metrics.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.conftest import WorkerProcess


@dataclass(frozen=True)
class Contender:
    """One way of pacing GetRecords, run as a bridge worker with these polling settings."""

    name: str
    interval: float
    idle_interval: float
    description: str


BRIDGE = Contender(
    "bridge",
    0.25,
    1.0,
    "bridge's adaptive polling, defaults: at once while records flow, "
    "250 ms after an empty read, doubling to 1 s when idle",
)
FIXED_250 = Contender(
    "fixed-250ms",
    0.25,
    0.25,
    "a 250 ms poller (Lambda, monday.com's Bridge): bridge with interval = idle_interval = 250 ms",
)
KCL = Contender(
    "kcl-1s",
    1.0,
    1.0,
    "KCL's default pacing, 1 s idle time between reads: bridge with interval = idle_interval = 1 s",
)
CONTENDERS = (BRIDGE, FIXED_250, KCL)


@dataclass(frozen=True)
class Coordination:
    lease_duration: float = 10.0
    take_interval: float = 2.0
    shard_sync_interval: float = 60.0
    liveness: str = "lease"
    """``coordination.liveness``: each lease renewed (``lease``), or the heartbeat row alone."""


def dynamodb(endpoint_url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def create_table(ddb: Any, name: str) -> str:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def write_config(
    path: Path,
    *,
    app: str,
    table: str,
    endpoint_url: str,
    bootstrap_servers: str,
    contender: Contender,
    coordination: Coordination,
) -> Path:
    config = {
        "app": app,
        "source": {
            "table": table,
            "endpoint_url": endpoint_url,
            "region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        },
        "coordination": {
            "lease_duration": _ms(coordination.lease_duration),
            "take_interval": _ms(coordination.take_interval),
            "shard_sync_interval": _ms(coordination.shard_sync_interval),
            "liveness": coordination.liveness,
        },
        "polling": {
            "interval": _ms(contender.interval),
            "idle_interval": _ms(contender.idle_interval),
            "max_records": 1000,
        },
        "processor": {
            "kind": "kafka",
            "options": {"bootstrap_servers": bootstrap_servers, "topic": "{table}"},
        },
        "metrics": {"port": 0},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class BenchWorker(WorkerProcess):
    """A ``bridge run`` process whose metrics can be read."""

    def __init__(self, name: str, config: Path, log: Path) -> None:
        super().__init__(name, config, log)
        self._port: int | None = None

    def metrics_port(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self._port is None:
            for event in self.log_events():
                if event.get("event") == "serving metrics and probes":
                    self._port = int(event["port"])
            if self._port is None:
                if self.process.poll() is not None:
                    raise RuntimeError(f"worker {self.name} exited:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker {self.name} serves no metrics:\n{self.log_tail()}")
                time.sleep(0.1)
        return self._port

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics by name (labels dropped: one app and table per worker)."""
        url = f"http://127.0.0.1:{self.metrics_port()}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.labels.get("le"):
                    values[sample.name] = values.get(sample.name, 0.0) + sample.value
        return values
