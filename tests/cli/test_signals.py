"""Every long-running command ends cleanly on SIGINT and on SIGTERM, whenever it comes: while
the command loads, connects, starts its children, runs, and while it is already stopping.

Each case is a real ``bridge`` process and a real signal at a moment the test can see (the
process catching SIGTERM, a line of its output, a delay after one). Clean means: the exit
code the command documents (0; 1 for ``bridge demo``, which then checked nothing), promptly,
no traceback, no child process left running, and no lease left held. The quick tier sends a
few signals per command; ``--full`` sweeps every moment with both signals.
"""

from __future__ import annotations

import signal
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker, free_port
from tests.cli.signalled import CommandProcess, Moment, assert_clean, signal_at
from tests.kafka.topic_reader import create_topic
from tests.support.workload import create_table

SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM
PROMPT = 15.0
"""Seconds from the signal to the exit; a drain here takes well under one."""


def loading(delay: float) -> Moment:
    return Moment(f"{delay:g}s-after-handlers", delay=delay)


@dataclass(frozen=True)
class Case:
    moment: Moment
    signum: int

    @property
    def id(self) -> str:
        return f"{self.moment.name}-{signal.Signals(self.signum).name}"


def sweep(moments: list[Moment]) -> list[Case]:
    return [Case(moment, signum) for moment in moments for signum in (SIGINT, SIGTERM)]


def ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


def dynamodb(endpoint: LocalEndpoint) -> Any:
    # Module fixtures run before the per-test dummy credentials are in the environment.
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


# -- bridge run ------------------------------------------------------------------------------

RUN_QUICK = [
    Case(loading(0.3), SIGINT),
    Case(Moment("draining", line="shard started", again_on="stop requested"), SIGTERM),
]
RUN_SWEEP = sweep(
    [
        *(loading(delay) for delay in (0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.3)),
        Moment("lease-table-created", line="lease table created"),
        Moment("worker-started", line="worker started"),
        Moment("shard-started", line="shard started"),
        Moment("shard-started+0.2s", line="shard started", delay=0.2),
        Moment("draining", line="shard started", again_on="stop requested"),
        Moment("stopped", line="shard started", again_on="worker stopped"),
    ]
)


@pytest.fixture(scope="module")
def source(local_endpoint: LocalEndpoint) -> str:
    ddb = dynamodb(local_endpoint)
    table, _ = create_table(ddb, prefix="signals")
    for n in range(8):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{n}"}})
    return table


def run_case(case: Case, tmp_path: Path, endpoint: LocalEndpoint, table: str) -> None:
    app = f"sig-{uuid.uuid4().hex[:8]}"
    config = tmp_path / f"{app}.yaml"
    config.write_text(
        f"app: {app}\n"
        f"source: {{table: {table}, endpoint_url: '{endpoint.endpoint_url}',\n"
        "  aws_access_key_id: testing, aws_secret_access_key: testing}\n"
        "coordination: {lease_duration: 3s, take_interval: 200ms, drain_timeout: 2s}\n"
        "polling: {interval: 100ms, idle_interval: 200ms}\n"
        "processor: {kind: log}\n"
        "metrics: {port: 0}\n"
    )
    process = CommandProcess(["run", "-c", str(config)], tmp_path / f"{app}.log")
    outcome = signal_at(process, case.moment, case.signum, PROMPT)
    assert_clean(outcome, 0)
    assert not held_leases(endpoint, f"{app}-leases"), outcome.output[-3000:]


def held_leases(endpoint: LocalEndpoint, lease_table: str) -> list[str]:
    ddb = dynamodb(endpoint)
    try:
        rows = ddb.scan(TableName=lease_table, ConsistentRead=True)["Items"]
    except ddb.exceptions.ResourceNotFoundException:  # stopped before it was created
        return []
    return [row["leaseKey"]["S"] for row in rows if "leaseOwner" in row]


@pytest.mark.parametrize("case", RUN_QUICK, ids=ids(RUN_QUICK))
def test_run_ends_cleanly(
    case: Case, tmp_path: Path, local_endpoint: LocalEndpoint, source: str
) -> None:
    run_case(case, tmp_path, local_endpoint, source)


@pytest.mark.slow
@pytest.mark.parametrize("case", RUN_SWEEP, ids=ids(RUN_SWEEP))
def test_run_ends_cleanly_at_every_moment(
    case: Case, tmp_path: Path, local_endpoint: LocalEndpoint, source: str
) -> None:
    run_case(case, tmp_path, local_endpoint, source)


# -- bridge status --watch -------------------------------------------------------------------

DOCUMENT = '"lease_table"'
STATUS_QUICK = [Case(loading(0.2), SIGTERM), Case(Moment("watching", line=DOCUMENT), SIGINT)]
STATUS_SWEEP = sweep(
    [
        *(loading(delay) for delay in (0, 0.2, 0.4, 0.7, 1.0)),
        Moment("watching", line=DOCUMENT),
        Moment("watching+0.05s", line=DOCUMENT, delay=0.05),
        Moment("watching+0.13s", line=DOCUMENT, delay=0.13),
    ]
)


@pytest.fixture(scope="module")
def watched_app(local_endpoint: LocalEndpoint) -> str:
    app = f"watched-{uuid.uuid4().hex[:6]}"
    dynamodb(local_endpoint).create_table(
        TableName=f"{app}-leases",
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return app


def status_case(case: Case, tmp_path: Path, endpoint: LocalEndpoint, app: str) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"app: {app}\n"
        f"source: {{table: orders, endpoint_url: '{endpoint.endpoint_url}',\n"
        "  aws_access_key_id: testing, aws_secret_access_key: testing}\n"
    )
    command = ["status", "-c", str(config), "--json", "--watch", "--interval", "100ms"]
    process = CommandProcess(command, tmp_path / "status.log")
    assert_clean(signal_at(process, case.moment, case.signum, PROMPT), 0)


@pytest.mark.parametrize("case", STATUS_QUICK, ids=ids(STATUS_QUICK))
def test_status_watch_ends_cleanly(
    case: Case, tmp_path: Path, local_endpoint: LocalEndpoint, watched_app: str
) -> None:
    status_case(case, tmp_path, local_endpoint, watched_app)


@pytest.mark.slow
@pytest.mark.parametrize("case", STATUS_SWEEP, ids=ids(STATUS_SWEEP))
def test_status_watch_ends_cleanly_at_every_moment(
    case: Case, tmp_path: Path, local_endpoint: LocalEndpoint, watched_app: str
) -> None:
    status_case(case, tmp_path, local_endpoint, watched_app)


# -- bridge local --kafka --------------------------------------------------------------------

BANNER = "Press Ctrl+C"
LOCAL_QUICK = [Case(loading(0.5), SIGINT), Case(Moment("serving", line=BANNER), SIGTERM)]
LOCAL_SWEEP = sweep(
    [
        *(loading(delay) for delay in (0, 0.1, 0.3, 0.6, 1.0, 1.5)),
        Moment("serving", line=BANNER),
        Moment("serving+0.2s", line=BANNER, delay=0.2),
    ]
)


def local_case(case: Case, tmp_path: Path) -> None:
    port, kafka_port = free_port(), free_port()
    command = ["local", "--port", str(port), "--kafka", "--kafka-port", str(kafka_port)]
    process = CommandProcess(command, tmp_path / "local.log", env={"TMPDIR": str(tmp_path)})
    outcome = signal_at(process, case.moment, case.signum, PROMPT)
    assert_clean(outcome, 0)
    assert not listening(port) and not listening(kafka_port), outcome.output


@pytest.mark.parametrize("case", LOCAL_QUICK, ids=ids(LOCAL_QUICK))
def test_local_ends_cleanly(case: Case, tmp_path: Path) -> None:
    local_case(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", LOCAL_SWEEP, ids=ids(LOCAL_SWEEP))
def test_local_ends_cleanly_at_every_moment(case: Case, tmp_path: Path) -> None:
    local_case(case, tmp_path)


# -- bridge replica --------------------------------------------------------------------------

FOLLOWING = "replica following"
REPLICA_QUICK = [Case(loading(0.3), SIGTERM), Case(Moment("following", line=FOLLOWING), SIGINT)]
REPLICA_SWEEP = sweep(
    [
        *(loading(delay) for delay in (0, 0.2, 0.5, 0.8, 1.2)),
        Moment("following", line=FOLLOWING),
        Moment("following+0.3s", line=FOLLOWING, delay=0.3),
    ]
)


@pytest.fixture(scope="module")
def followed_topic(kafka_broker: KafkaBroker) -> str:
    return create_topic(kafka_broker.bootstrap_servers, "signals", 2)


def replica_case(case: Case, tmp_path: Path, broker: KafkaBroker, topic: str) -> None:
    config = tmp_path / "replica.yaml"
    config.write_text(
        f"app: sig-replica-{uuid.uuid4().hex[:6]}\n"
        f"kafka: {{bootstrap_servers: '{broker.bootstrap_servers}', topic: {topic},\n"
        "  check_interval: 200ms}\n"
        f"sqlite: {{path: '{tmp_path / 'replica.db'}'}}\n"
        "metrics: {enabled: false}\n"
    )
    process = CommandProcess(["replica", "-c", str(config)], tmp_path / "replica.log")
    assert_clean(signal_at(process, case.moment, case.signum, PROMPT), 0)


@pytest.mark.parametrize("case", REPLICA_QUICK, ids=ids(REPLICA_QUICK))
def test_replica_ends_cleanly(
    case: Case, tmp_path: Path, kafka_broker: KafkaBroker, followed_topic: str
) -> None:
    replica_case(case, tmp_path, kafka_broker, followed_topic)


@pytest.mark.slow
@pytest.mark.parametrize("case", REPLICA_SWEEP, ids=ids(REPLICA_SWEEP))
def test_replica_ends_cleanly_at_every_moment(
    case: Case, tmp_path: Path, kafka_broker: KafkaBroker, followed_topic: str
) -> None:
    replica_case(case, tmp_path, kafka_broker, followed_topic)


# -- bridge demo -----------------------------------------------------------------------------

DEMO_QUICK = [
    Case(Moment("endpoint-up", line="bridge local (DynamoDB"), SIGINT),
    Case(Moment("draining", line="shard started", again_on="stop requested"), SIGTERM),
]
DEMO_SWEEP = sweep(
    [
        *(loading(delay) for delay in (0, 0.5, 1.5)),
        Moment("endpoint-up", line="bridge local (DynamoDB"),
        Moment("broker-up", line="Kafka broker at"),
        Moment("worker-started", line="worker started"),
        Moment("shard-started+0.3s", line="shard started", delay=0.3),
        Moment("draining", line="shard started", again_on="stop requested"),
    ]
)


def demo_case(case: Case, tmp_path: Path) -> None:
    # Slow enough writes that every moment above comes before the demo could finish.
    command = ["demo", "--writes", "2000", "--rate", "200"]
    process = CommandProcess(command, tmp_path / "demo.log", env={"TMPDIR": str(tmp_path)})
    outcome = signal_at(process, case.moment, case.signum, PROMPT)
    assert_clean(outcome, 1)
    assert "the demo stopped before its check" in outcome.output.splitlines()[-1]


@pytest.mark.parametrize("case", DEMO_QUICK, ids=ids(DEMO_QUICK))
def test_demo_ends_cleanly(case: Case, tmp_path: Path) -> None:
    demo_case(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", DEMO_SWEEP, ids=ids(DEMO_SWEEP))
def test_demo_ends_cleanly_at_every_moment(case: Case, tmp_path: Path) -> None:
    demo_case(case, tmp_path)


def test_every_long_running_command_is_covered() -> None:
    from bridge.cli._app import LONG_RUNNING

    covered: dict[str, Callable[..., None]] = {
        "run": run_case,
        "status": status_case,
        "local": local_case,
        "replica": replica_case,
        "demo": demo_case,
    }
    assert set(covered) == LONG_RUNNING
