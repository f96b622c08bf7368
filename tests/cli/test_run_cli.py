"""``bridge run`` refuses what it cannot do, at start, with a message naming the problem."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import boto3

from bridge.local.processes import MotoServer


def write_config(tmp_path: Path, endpoint: str, table: str, kind: str = "log") -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        f"app: cli-{uuid.uuid4().hex[:6]}\n"
        f"source: {{table: {table}, endpoint_url: '{endpoint}', region: us-east-1,\n"
        "  aws_access_key_id: testing, aws_secret_access_key: testing}\n"
        f"processor: {{kind: '{kind}'}}\n"
    )
    return path


def bridge_run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--log-format", "json", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_table_exits_1_and_names_it(tmp_path: Path, moto_server: MotoServer) -> None:
    done = bridge_run(write_config(tmp_path, moto_server.endpoint_url, "no-such-table"))
    assert done.returncode == 1, done.stderr
    assert "no-such-table" in done.stderr.splitlines()[-1]


def test_table_without_a_stream_exits_1_and_says_so(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    table = f"plain-{uuid.uuid4().hex[:6]}"
    boto3.client("dynamodb", endpoint_url=moto_server.endpoint_url).create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    done = bridge_run(write_config(tmp_path, moto_server.endpoint_url, table))
    assert done.returncode == 1, done.stderr
    last = done.stderr.splitlines()[-1]
    assert table in last and "stream" in last.lower()


def test_unloadable_processor_exits_2_before_touching_aws(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", "orders", kind="nowhere.mod:Thing")
    done = bridge_run(config)
    assert done.returncode == 2, done.stderr
    assert "cannot import nowhere" in done.stderr
