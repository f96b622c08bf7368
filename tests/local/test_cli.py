"""The ``bridge local`` command itself: what it prints, what it starts, how it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import orjson
import pytest
from botocore.config import Config
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from bridge.cli import app
from bridge.local.processes import free_port
from tests.local.stream_reading import create_table, put


def read_banner(proc: subprocess.Popen[str], deadline: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl+C"):
            return lines
    pytest.fail(f"no banner from bridge local: {lines}")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_it_prints_its_endpoints_serves_and_stops_on_a_signal(signum: int, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "bridge", "local", "--port", str(port), "--kafka"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        try:
            banner = read_banner(proc, time.monotonic() + 60)
            assert banner[0] == f"DynamoDB, DynamoDB Streams and S3: http://127.0.0.1:{port}"
            kafka_line = next(line for line in banner if line.startswith("Kafka: "))
            bootstrap = kafka_line.split()[1]
            kafka_port = int(bootstrap.rsplit(":", 1)[1])
            # a real Kafka broker answers at the printed address, and advertises that address
            metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=20)
            assert [f"{b.host}:{b.port}" for b in metadata.brokers.values()] == [bootstrap]
            ddb = boto3.client(
                "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1"
            )
            assert ddb.list_tables()["TableNames"] == []
            proc.send_signal(signum)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not listening(port)
    assert not listening(kafka_port), "the Kafka broker outlived bridge local"


def test_options_reach_the_endpoint_and_no_kafka_starts_without_kafka(tmp_path: Path) -> None:
    port = free_port()
    options = ["--shards", "2", "--rotate-records", "3", "--rotate-seconds", "0"]
    options += ["--retention", "1h", "--iterator-ttl", "5m", "--throttle-rate", "0.25"]
    command = [sys.executable, "-m", "bridge", "local", "--port", str(port), *options]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        try:
            banner = read_banner(proc, time.monotonic() + 60)
            url = f"http://127.0.0.1:{port}"
            assert banner[:3] == [
                f"DynamoDB, DynamoDB Streams and S3: {url}",
                "  streams: 2 shards, rotate after 3 records or 0s, "
                "retention 3600s, iterator TTL 300s",
                f"  control: {url}/_bridge/{{rotate,clock,trim,throttle,append,stats,capacity}}",
            ]
            assert not any(line.startswith("Kafka") for line in banner)
            with urllib.request.urlopen(f"{url}/_bridge/stats", timeout=10) as answer:
                stats = orjson.loads(answer.read())
            assert stats["settings"] == {
                "shards": 2,
                "max_open_shards": 0,
                "rotate_records": 3,
                "rotate_seconds": 0.0,
                "retention_seconds": 3600.0,
                "iterator_ttl_seconds": 300.0,
            }
            assert stats["faults"]["throttle_rate"] == 0.25

            ddb = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
            patient = Config(retries={"mode": "standard", "max_attempts": 20})
            streams = boto3.client(
                "dynamodbstreams", endpoint_url=url, region_name="us-east-1", config=patient
            )
            table, arn = create_table(ddb)
            for n in range(3):
                put(ddb, table, "one-key", n)
            shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            closed = [s for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
            assert (len(shards), len(closed)) == (2 + 2, 1)  # its 3rd record closed one shard
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_python_dash_m_bridge_local_is_the_same_command() -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "bridge.local", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0
    assert "--rotate-records" in answer.stdout


@pytest.mark.parametrize(
    "arguments",
    [
        ["--retention", "a while"],
        ["--iterator-ttl", "-3s"],
        ["--shards", "0"],
        ["--throttle-rate", "1.5"],
    ],
)
def test_bad_options_exit_with_2(arguments: list[str]) -> None:
    result = CliRunner().invoke(app, ["local", "--port", "0", *arguments])
    assert result.exit_code == 2, result.output
