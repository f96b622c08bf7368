"""How bridge runs its main coroutine: on uvloop where it is installed, and to a clean end
whenever SIGINT or SIGTERM arrives.

``asyncio.run`` and ``uvloop.run`` are not enough for a command that runs until stopped:

- Their SIGINT handling exists only while the loop runs. A signal during the imports, the
  configuration or between two loops raises ``KeyboardInterrupt`` wherever the code happens to
  be (a traceback out of an import), and SIGTERM, what Kubernetes sends, is not handled at all.
- It is one cancellation of the main task. A cancellation can be absorbed (Python 3.11's
  ``asyncio.wait_for`` returns the result of an inner future that finished at the moment of
  the cancel; libraries catch ``CancelledError``), and the program then runs on for good.
- uvloop's ``remove_signal_handler`` does nothing once its loop has stopped, so a handler added
  with ``add_signal_handler`` outlives its loop: every later SIGINT or SIGTERM goes to a closed
  loop and is dropped.
- Closing the loop waits for every thread of the default executor, for as long as they take.

So a command calls ``install_stop_signals()`` first: from then on SIGINT and SIGTERM only
record a stop request, wherever the program is. ``run`` turns a request into what the running
program asked for with ``loop.add_signal_handler`` (a worker's drain, a replica's last
transaction) or else into a cancellation of the main coroutine; if the coroutine still runs
``grace`` seconds later it is cancelled (again), and ``grace`` seconds after that it is left
behind. Synchronous code asks ``stop_requested()`` or waits in ``wait_for_stop()``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # asyncio, structlog and rich are imported when a loop runs, not before
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CLOSE_TIMEOUT = 5.0
"""How long closing a loop waits for cancelled tasks, async generators and executor threads."""


def _log() -> Any:
    import structlog

    return structlog.get_logger("bridge.eventloop")


_Handler = tuple[Callable[..., object], tuple[object, ...]]


class Interrupted(Exception):
    """``run``'s coroutine was cancelled (or left behind) because a signal asked to stop."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@dataclass
class _StopRequests:
    signum: int | None = None
    """The first stop signal received."""
    wakeup: tuple[int, int] | None = None
    """A pipe (read end, write end): one byte per signal, for a loop or a waiter to see."""
    previous: dict[int, Any] = field(default_factory=dict)


_requests = _StopRequests()


def install_stop_signals() -> bool:
    """From now on SIGINT and SIGTERM request a stop instead of interrupting whatever runs.

    False (and nothing changed) off the main thread, where Python lets no one set handlers.
    """
    if _requests.wakeup is not None:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    _requests.wakeup = (read, write)
    for signum in STOP_SIGNALS:
        _requests.previous[signum] = signal.signal(signum, _on_signal)
    return True


def restore_signals() -> None:
    """Python's own handling again; a stop already requested is forgotten."""
    wakeup = _requests.wakeup
    if wakeup is None:
        return
    for signum, handler in _requests.previous.items():
        signal.signal(signum, handler)
    _requests.previous.clear()
    _requests.wakeup = None
    _requests.signum = None
    for end in wakeup:
        os.close(end)


@contextlib.contextmanager
def stop_signals() -> Iterator[bool]:
    """``install_stop_signals()`` for the length of a block, unless they were on already
    (the command line turns them on first thing); yields whether they are on."""
    ours = _requests.wakeup is None and install_stop_signals()
    try:
        yield _requests.wakeup is not None
    finally:
        if ours:
            restore_signals()


def stop_requested() -> int | None:
    """The signal that asked to stop, or None."""
    return _requests.signum


def wait_for_stop(timeout: float | None = None) -> int | None:
    """Block until a stop is requested or ``timeout`` passed; the signal, or None."""
    wakeup = _requests.wakeup
    if wakeup is None:
        raise RuntimeError("wait_for_stop() needs install_stop_signals() first")
    if _requests.signum is None:
        # A signal that lands before select() has already written its byte: nothing is missed.
        select.select([wakeup[0]], [], [], timeout)
    return _requests.signum


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Runs in the main thread between two bytecodes of whatever it was doing: it takes no
    # lock (the code it interrupted may hold it) and cannot raise.
    if _requests.signum is None:
        _requests.signum = signum
    wakeup = _requests.wakeup
    if wakeup is not None:
        with contextlib.suppress(OSError):
            os.write(wakeup[1], bytes((signum,)))


def run(main: Coroutine[Any, Any, T], *, grace: float = 10.0) -> T:
    """Run ``main`` to its end on a new loop; raises ``Interrupted`` when a stop request
    cancelled it (or it was already requested). Without ``install_stop_signals()`` this is
    ``uvloop.run`` / ``asyncio.run``, signals and all."""
    if _requests.wakeup is None:
        return _plain_run(main)
    if _requests.signum is not None:
        main.close()
        raise Interrupted(_requests.signum)
    from concurrent.futures import ThreadPoolExecutor

    loop = _routed_loop_class()()
    executor = ThreadPoolExecutor(thread_name_prefix="bridge-io")
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(_Supervisor(loop, grace).run(main))
    finally:
        try:
            _finish(loop, executor)
        finally:
            loop.close()


def _plain_run(main: Coroutine[Any, Any, T]) -> T:
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


class _Supervisor:
    """Watches the stop requests while ``main`` runs, and acts on each as the program asked."""

    def __init__(self, loop: asyncio.AbstractEventLoop, grace: float) -> None:
        import asyncio

        self.loop = loop
        self.grace = grace
        self.cancelled = False
        self.left_behind = asyncio.Event()
        self._escalation: asyncio.TimerHandle | None = None

    async def run(self, main: Coroutine[Any, Any, T]) -> T:
        import asyncio

        task = self.loop.create_task(main)
        assert _requests.wakeup is not None
        read = _requests.wakeup[0]
        self.loop.add_reader(read, self._signalled, read, task)
        try:
            behind = asyncio.ensure_future(self.left_behind.wait())
            await asyncio.wait({task, behind}, return_when=asyncio.FIRST_COMPLETED)
            behind.cancel()
        finally:
            self.loop.remove_reader(read)
            if self._escalation is not None:
                self._escalation.cancel()
        signum = _requests.signum
        if signum is not None and (not task.done() or (task.cancelled() and self.cancelled)):
            raise Interrupted(signum)
        return task.result()

    def _signalled(self, read: int, task: asyncio.Task[Any]) -> None:
        received = b""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while chunk := os.read(read, 64):
                received += chunk
        for signum in received:
            self._dispatch(signum, task)

    def _dispatch(self, signum: int, task: asyncio.Task[Any]) -> None:
        handler: _Handler | None = _stop_handlers(self.loop).get(signum)
        if handler is None:
            self.cancelled = True
            task.cancel()
        else:
            callback, args = handler
            try:
                callback(*args)
            except Exception as exc:  # a broken handler must not keep the program running
                _log().error("stop handler failed: cancelling", error=repr(exc))
                self.cancelled = True
                task.cancel()
        if self._escalation is None:
            self._escalation = self.loop.call_later(self.grace, self._escalate, task)

    def _escalate(self, task: asyncio.Task[Any]) -> None:
        if task.done():
            return
        _log().warning("still running after the stop request: cancelling", grace_s=self.grace)
        self.cancelled = True
        task.cancel()
        self._escalation = self.loop.call_later(self.grace, self._leave_behind, task)

    def _leave_behind(self, task: asyncio.Task[Any]) -> None:
        if not task.done():
            _log().error("did not stop when cancelled: leaving it behind", grace_s=self.grace)
            self.left_behind.set()


def _finish(loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor) -> None:
    """What ``asyncio.run`` does after its coroutine, each step with a time limit."""
    import asyncio

    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=CLOSE_TIMEOUT))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception while closing the loop",
                    "exception": task.exception(),
                    "task": task,
                }
            )
    with contextlib.suppress(TimeoutError):
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), CLOSE_TIMEOUT))
    # A thread stuck in a blocking call is not waited for past the limit; the command line
    # bounds the interpreter's own wait for it at exit.
    closer = threading.Thread(
        target=executor.shutdown, kwargs={"cancel_futures": True}, daemon=True
    )
    closer.start()
    closer.join(CLOSE_TIMEOUT)


def _stop_handlers(loop: object) -> dict[int, _Handler]:
    handlers: dict[int, _Handler] = loop.__dict__.setdefault("_bridge_stop_handlers", {})
    return handlers


class _RoutesStopSignals:
    """SIGINT and SIGTERM handlers added to the loop become what a stop request does, so they
    share the process's one handler instead of replacing it (and dying with the loop)."""

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: object) -> None:
        if sig in STOP_SIGNALS and _requests.wakeup is not None:
            _stop_handlers(self)[sig] = (callback, args)
            return
        super().add_signal_handler(sig, callback, *args)  # type: ignore[misc]

    def remove_signal_handler(self, sig: int) -> bool:
        if _stop_handlers(self).pop(sig, None) is not None:
            return True
        removed: bool = super().remove_signal_handler(sig)  # type: ignore[misc]
        return removed


@functools.cache
def _routed_loop_class() -> type[asyncio.AbstractEventLoop]:
    import asyncio

    base: type[asyncio.AbstractEventLoop]
    try:
        import uvloop

        base = uvloop.Loop
    except ImportError:
        base = asyncio.SelectorEventLoop
    routed: type[asyncio.AbstractEventLoop] = type("RoutedLoop", (_RoutesStopSignals, base), {})
    return routed
