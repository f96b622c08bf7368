"""``bridge run`` with ``processor.kind: kafka`` refuses to start, clearly, without a broker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import free_port
from tests.kafka.workload import create_table


def test_bridge_run_exits_2_naming_the_unreachable_broker(
    tmp_path: Path, local_endpoint: LocalEndpoint
) -> None:
    ddb = boto3.client(
        "dynamodb", endpoint_url=local_endpoint.endpoint_url, region_name="us-east-1"
    )
    table = create_table(ddb)
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"app: kafka-cli-{uuid.uuid4().hex[:6]}\n"
        f"source: {{table: {table}, endpoint_url: '{local_endpoint.endpoint_url}',\n"
        "  aws_access_key_id: testing, aws_secret_access_key: testing}\n"
        "processor:\n"
        "  kind: kafka\n"
        f"  options: {{bootstrap_servers: '{address}', startup_timeout: 1s}}\n"
        "metrics: {port: 0}\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "--log-format", "json", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert address in last and repr(table) in last, last
    assert time.monotonic() - started < 30
