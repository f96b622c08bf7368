"""``bridge run`` as a separate OS process, signalled for real (SIGKILL, SIGTERM, SIGSTOP and
SIGCONT), its JSON log in a file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``python -m bridge run -c FILE`` as worker ``name`` (default: host and pid), its JSON
    log in a file."""

    def __init__(self, name: str | None, config: Path, log: Path) -> None:
        self.name = name or "default"
        self.log = log
        self.signalled: str | None = None  # set once the test stops it on purpose
        env = {**os.environ, "BRIDGE_WORKER_ID": name} if name else dict(os.environ)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--log-format", "json", "run", "-c", str(config)],
                cwd=ROOT,
                stdout=out,
                stderr=out,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> float:
        """SIGKILL; returns the monotonic time the signal was sent."""
        self.signalled = "SIGKILL"
        sent = time.monotonic()
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return sent

    def terminate(self) -> float:
        """SIGTERM (the drain starts); returns the monotonic time the signal was sent."""
        self.signalled = "SIGTERM"
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        return sent

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout=timeout)

    def pause(self) -> float:
        self.signalled = "SIGSTOP"
        sent = time.monotonic()
        os.kill(self.pid, signal.SIGSTOP)
        return sent

    def resume(self) -> float:
        sent = time.monotonic()
        os.kill(self.pid, signal.SIGCONT)
        self.signalled = None
        return sent

    def ensure_alive(self) -> None:
        if self.signalled is not None:
            return
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"worker {self.name} exited with {code}:\n{self.log_tail()}")

    def wait_for(self, condition: Callable[[], object], within: float, what: str) -> None:
        """Poll a condition on files, logs or tables until it holds, failing at once if the
        worker died on its own."""
        deadline = time.monotonic() + within
        while not condition():
            self.ensure_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within}s waiting for {what}")
            time.sleep(0.05)

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The structured log lines whose message is ``event``."""
        return [line for line in self.log_events() if line.get("event") == event]

    def log_events(self) -> list[dict[str, Any]]:
        """The worker's structured log lines (other lines, from libraries, are skipped)."""
        events = []
        for line in self.log.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop_for_teardown(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
