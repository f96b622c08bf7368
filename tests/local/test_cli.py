"""The ``bridge local`` command itself: what it prints, what it starts, how it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.local.processes import free_port


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
            kafka_port = int(kafka_line.split()[1].rsplit(":", 1)[1])
            assert listening(kafka_port)
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
