"""Shared fixtures: real servers in child processes, a quick and a full tier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker, ManagedProcess, MotoServer

_SERVERS: list[ManagedProcess] = []

# No deadline per example: it is a timing assertion, and on a loaded machine (CI, two suites
# at once) a slow example is not a wrong one.
settings.register_profile("bridge", deadline=None)
settings.load_profile("bridge")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full", action="store_true", help="also run the slow scenario tests (the full tier)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="slow scenario: run with --full")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed:
        for server in _SERVERS:
            report.sections.append((f"{server.name} server log", server.log_tail()))
    return report


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def moto_server(server_logs: Path) -> Iterator[MotoServer]:
    """moto's plain server over HTTP; session-wide because tests use their own table names."""
    with MotoServer(log_dir=server_logs) as server:
        _SERVERS.append(server)
        yield server
        _SERVERS.remove(server)


@pytest.fixture(scope="session")
def kafka_broker(server_logs: Path) -> Iterator[KafkaBroker]:
    """A real Kafka-protocol broker; tests use their own topic names."""
    with KafkaBroker(log_dir=server_logs) as broker:
        _SERVERS.append(broker)
        yield broker
        _SERVERS.remove(broker)


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials so no test can ever reach a real AWS account by accident."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def local_endpoint(server_logs: Path) -> Iterator[LocalEndpoint]:
    """``bridge local`` with default settings, shared by the session: tests use their own
    table names and must not move its clock or throttle it (use make_local_endpoint)."""
    with LocalEndpoint(log_dir=server_logs) as endpoint:
        _SERVERS.append(endpoint)
        yield endpoint
        _SERVERS.remove(endpoint)


@pytest.fixture
def make_local_endpoint(server_logs: Path) -> Iterator[Callable[..., LocalEndpoint]]:
    """A factory for ``bridge local`` endpoints with special settings, stopped after the test:
    ``make_local_endpoint(rotate_records=10, retention="1h")``."""
    started: list[LocalEndpoint] = []

    def make(**options: object) -> LocalEndpoint:
        endpoint = LocalEndpoint(log_dir=server_logs, **options)  # type: ignore[arg-type]
        endpoint.start()
        started.append(endpoint)
        _SERVERS.append(endpoint)
        return endpoint

    yield make
    for endpoint in started:
        endpoint.stop()
        _SERVERS.remove(endpoint)
