"""``bridge run`` and ``bridge replica`` that cannot start say why in one line on stderr, naming
the setting or address behind it, and exit 2: the configuration or its environment (an
address, credentials, permissions, a bucket) must change. A failure that may pass (nothing
listening yet) is tried again first, for ``--startup-timeout``. No traceback, unless asked
for with ``--log-level debug``.

Each runs the real command against ``bridge local``, whose table faults refuse what a policy
or a credential check would, or against a port where nothing listens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from bridge.config import SourceConfig
from bridge.leases.heartbeats import WorkerRegistry
from bridge.leases.store import DynamoLeaseStore
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import free_port
from bridge.worker.app import StartupError, StartupSteps
from tests.cli.signalled import ROOT, CommandProcess
from tests.support.workload import create_table


@pytest.fixture(scope="module")
def endpoint(server_logs: Path) -> Iterator[LocalEndpoint]:
    """An endpoint of this module's own: its tests switch table faults on."""
    with LocalEndpoint(log_dir=server_logs) as local:
        yield local


@pytest.fixture
def table(endpoint: LocalEndpoint) -> str:
    name, _ = create_table(
        boto3.client("dynamodb", endpoint_url=endpoint.endpoint_url), prefix="startup"
    )
    return name


def bridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--log-format", "json", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env,
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


def worker_yaml(
    tmp_path: Path,
    endpoint_url: str,
    table: str,
    *,
    app: str | None = None,
    credentials: bool = True,
    processor: str = "{kind: log}",
) -> Path:
    keys = ",\n  aws_access_key_id: testing, aws_secret_access_key: testing" if credentials else ""
    path = tmp_path / "bridge.yaml"
    path.write_text(
        f"app: {app or 'startup-' + uuid.uuid4().hex[:6]}\n"
        f"source: {{table: {table}, endpoint_url: '{endpoint_url}'{keys}}}\n"
        "coordination: {lease_duration: 3s, take_interval: 200ms, drain_timeout: 2s}\n"
        f"processor: {processor}\n"
        "metrics: {port: 0}\n"
    )
    return path


def test_an_endpoint_that_does_not_answer_is_tried_again_then_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    config = worker_yaml(tmp_path, url, "orders")
    # botocore's own three tries of the first call take up to 3 s: then at least one more.
    done = bridge("run", "-c", str(config), "--startup-timeout", "4s")
    assert done.returncode == 2, done.stderr
    line = last_line(done)
    assert line.startswith(
        f"error: cannot reach DynamoDB at {url} (source.endpoint_url), tried "
    ), line
    assert "Could not connect to the endpoint URL" in line, line
    assert "DynamoDB not reachable yet, retrying" in done.stderr
    assert time.monotonic() - started < 30


async def test_the_region_is_named_when_no_endpoint_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    steps = StartupSteps(SourceConfig(table="orders", region="eu-south-9"), timeout=0)

    async def unreachable() -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-south-9.amazonaws.com")

    named = r"^cannot reach DynamoDB in region eu-south-9 \(source\.region\), tried for 0s: "
    with pytest.raises(StartupError, match=named):
        await steps.step("reading table 'orders' (source.table)", unreachable)


def test_debug_logging_keeps_the_traceback(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config = worker_yaml(tmp_path, url, "orders")
    done = bridge("--log-level", "debug", "run", "-c", str(config), "--startup-timeout", "0s")
    assert done.returncode == 2, done.stderr
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot reach DynamoDB at ")


def test_no_credentials_at_all(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",  # no instance role to ask, here or anywhere
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
    )
    url = f"http://127.0.0.1:{free_port()}"
    done = bridge(
        "run", "-c", str(worker_yaml(tmp_path, url, "orders", credentials=False)), env=env
    )
    assert done.returncode == 2, done.stderr
    assert last_line(done) == (
        "error: no AWS credentials found: set source.aws_access_key_id and "
        "source.aws_secret_access_key, or provide them the usual AWS way (environment, "
        "profile, web identity, instance role)"
    )


def test_credentials_the_service_refuses(
    tmp_path: Path, endpoint: LocalEndpoint, table: str
) -> None:
    endpoint.throttle(kind="UnrecognizedClientException", tables=[table], seconds=60)
    done = bridge("run", "-c", str(worker_yaml(tmp_path, endpoint.endpoint_url, table)))
    assert done.returncode == 2, done.stderr
    assert last_line(done) == (
        f"error: DynamoDB at {endpoint.endpoint_url} (source.endpoint_url) refused the "
        "credentials (from source.aws_access_key_id): UnrecognizedClientException: The "
        "security token included in the request is invalid (injected by bridge local)"
    )


def test_a_lease_table_it_may_not_create(
    tmp_path: Path, endpoint: LocalEndpoint, table: str
) -> None:
    app = f"denied-{uuid.uuid4().hex[:6]}"
    endpoint.throttle(kind="AccessDeniedException", tables=[f"{app}-leases"], seconds=60)
    done = bridge("run", "-c", str(worker_yaml(tmp_path, endpoint.endpoint_url, table, app=app)))
    assert done.returncode == 2, done.stderr
    assert last_line(done) == (
        f"error: DynamoDB at {endpoint.endpoint_url} (source.endpoint_url) denied creating "
        f"the lease table {app}-leases (from app): AccessDeniedException: User is not "
        "authorized to perform this action on this table (injected by bridge local)"
    )


async def test_tables_made_beforehand_need_no_create_permission() -> None:
    class CreateDenied:
        async def create_table(self, **request: Any) -> None:
            error = {"Code": "AccessDeniedException", "Message": "not dynamodb:CreateTable"}
            raise ClientError({"Error": error}, "CreateTable")

        async def describe_table(self, **request: Any) -> dict[str, Any]:
            return {"Table": {"TableStatus": "ACTIVE"}}

    await DynamoLeaseStore(CreateDenied(), "made-by-terraform").ensure_table()
    await WorkerRegistry(CreateDenied(), "made-by-terraform-coordination").ensure_table()


def test_a_passing_failure_at_start_is_tried_again(
    tmp_path: Path, endpoint: LocalEndpoint, table: str
) -> None:
    # Four calls throttled: more than botocore's own three tries of one call absorb.
    endpoint.throttle(4, kind="ThrottlingException", tables=[table])
    config = worker_yaml(tmp_path, endpoint.endpoint_url, table)
    process = CommandProcess(["run", "-c", str(config)], tmp_path / "run.log")
    try:
        assert process.wait_for_line("worker started"), process.output()
        process.send(signal.SIGTERM)
        assert process.wait(15) == 0, process.output()
    finally:
        process.kill()
    assert "DynamoDB not reachable yet, retrying" in process.output()


def test_a_snapshot_bucket_that_does_not_exist_sqlite(
    tmp_path: Path, endpoint: LocalEndpoint, table: str
) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    processor = (
        f"{{kind: sqlite, options: {{path: '{tmp_path / 'replica.db'}',\n"
        f"  snapshots: {{bucket: {bucket}, endpoint_url: '{endpoint.endpoint_url}'}}}}}}"
    )
    config = worker_yaml(tmp_path, endpoint.endpoint_url, table, processor=processor)
    done = bridge("run", "-c", str(config))
    assert done.returncode == 2, done.stderr
    assert last_line(done) == (
        f"error: snapshot bucket {bucket!r} (processor.options.snapshots.bucket) does not "
        f"exist at {endpoint.endpoint_url}"
    )


def test_a_snapshot_bucket_that_does_not_exist_replica(
    tmp_path: Path, endpoint: LocalEndpoint
) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "replica.yaml"
    config.write_text(
        "app: startup-replica\n"
        f"kafka: {{bootstrap_servers: '127.0.0.1:{free_port()}', topic: orders}}\n"
        f"sqlite: {{path: '{tmp_path / 'replica.db'}'}}\n"
        f"snapshots: {{bucket: {bucket}, endpoint_url: '{endpoint.endpoint_url}'}}\n"
        "metrics: {enabled: false}\n"
    )
    done = bridge("replica", "-c", str(config))
    assert done.returncode == 2, done.stderr
    assert last_line(done) == (
        f"error: snapshot bucket {bucket!r} (snapshots.bucket) does not exist at "
        f"{endpoint.endpoint_url}"
    )
