"""A ``bridge`` command as a separate OS process, to send real signals at chosen moments.

A moment is an event the test can see from outside: the process catching SIGTERM (bridge's
own handler is in place; Linux reports it in ``/proc/<pid>/status``), or a line in its output,
plus an optional delay that sweeps the stretch after it. Every child the command starts
inherits a marker in its environment, so one left running after the command exited is found.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "SIGNAL_TEST_MARKER"  # not BRIDGE_: those are configuration overrides


@dataclass(frozen=True)
class Moment:
    """When the signal goes: ``delay`` seconds after ``line`` appeared in the output, or after
    the process installed its handlers when ``line`` is None."""

    name: str
    line: str | None = None
    delay: float = 0.0
    again_on: str | None = None
    """A line after which the same signal is sent once more (a signal during the shutdown)."""


class CommandProcess:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.marker = uuid.uuid4().hex
        self.log = log
        environment = {**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {}), MARKER: self.marker}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--log-format", "json", *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_handling_signals(self, within: float = 30.0) -> None:
        """Until the process catches SIGTERM itself: Python's default leaves it to the kernel,
        so a caught SIGTERM means bridge's handler is installed."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._catches(signal.SIGTERM):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.005)
        raise AssertionError(f"never installed its signal handlers:\n{self.output()}")

    def _catches(self, signum: int) -> bool:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return False
        for line in status.splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
        return False

    def wait_for_line(self, text: str, within: float = 60.0) -> bool:
        """Until ``text`` shows in the output; False if the process exited without it."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                return text in self.output()
            time.sleep(0.01)
        raise AssertionError(f"no {text!r} within {within}s:\n{self.output()[-3000:]}")

    def send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    def wait(self, within: float) -> int:
        try:
            return self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints where it is stuck
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            message = f"still running {within}s after the signal:\n{self.output()}"
            raise AssertionError(message) from None

    def survivors(self) -> list[int]:
        """Processes other than this one that carry its marker: children left behind."""
        found = []
        needle = f"{MARKER}={self.marker}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.pid:
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        return found

    def kill(self) -> None:
        for pid in [self.pid, *self.survivors()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@dataclass(frozen=True)
class Outcome:
    code: int
    seconds: float
    """From the (first) signal to the exit."""
    output: str
    reached: bool
    """Whether the moment's line appeared (a command may end before it)."""
    survivors: list[int]
    """Children still running once the command exited."""


def signal_at(process: CommandProcess, moment: Moment, signum: int, within: float) -> Outcome:
    """Send ``signum`` at ``moment``, and once more after ``again_on``; wait for the exit."""
    try:
        process.wait_until_handling_signals()
        reached = True
        if moment.line is not None:
            reached = process.wait_for_line(moment.line)
        if moment.delay:
            time.sleep(moment.delay)  # the moment itself: a point in the stretch after the event
        sent = time.monotonic()
        process.send(signum)
        if moment.again_on is not None and process.wait_for_line(moment.again_on, within):
            process.send(signum)
        code = process.wait(within)
        seconds = time.monotonic() - sent
        return Outcome(code, seconds, process.output(), reached, process.survivors())
    finally:
        if process.proc.poll() is None or process.survivors():
            process.kill()


def assert_clean(outcome: Outcome, expected_code: int) -> None:
    """The documented exit code, no traceback, no child left running."""
    assert "Traceback" not in outcome.output, outcome.output
    assert outcome.code == expected_code, outcome.output[-3000:]
    assert not outcome.survivors, f"children left running:\n{outcome.output[-3000:]}"
