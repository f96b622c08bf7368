"""The load generator: versioned items written to ``bridge local`` at a steady rate, and the
reference log of every write DynamoDB acknowledged.

Each key counts its changes. A put writes ``{pk, version: n}`` with the key's next version;
a delete removes the item and is known by the version it removed (the REMOVE record's old
image carries it), so every change has one identity, ``Change(key, version, op)``, that a
sink shows whatever kind of message it keeps. Deletes only hit items that exist (a delete of
nothing makes no stream record), and one batch never holds a key twice, so the order of the
log is each key's order in the stream.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

BATCH = 25  # BatchWriteItem's limit

Op = Literal["put", "delete"]


@dataclass(frozen=True, order=True)
class Change:
    """One change of one item, as the generator made it and as a sink must show it."""

    key: str
    version: int
    op: Op


@dataclass(frozen=True)
class Acknowledged:
    """A change DynamoDB accepted, and when (``time.time()``, after the acknowledgement)."""

    change: Change
    at: float
    poison: bool = False


@dataclass
class ReferenceLog:
    """Every acknowledged change, in the order it was acknowledged."""

    entries: list[Acknowledged] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def extend(self, changes: Sequence[Change], at: float, *, poison: bool = False) -> None:
        with self._lock:
            self.entries += [Acknowledged(c, at, poison) for c in changes]

    def snapshot(self) -> list[Acknowledged]:
        with self._lock:
            return list(self.entries)

    def changes(self) -> list[Change]:
        return [entry.change for entry in self.snapshot()]

    def final_state(self) -> dict[str, int]:
        """What the table must hold at the end: each present key's version."""
        state: dict[str, int] = {}
        for change in self.changes():
            if change.op == "put":
                state[change.key] = change.version
            else:
                state.pop(change.key, None)
        return state


class LoadGenerator:
    """Writes ``rate`` changes a second over ``keys`` keys (``delete_ratio`` of them deletes)
    on a thread, until stopped; ``log`` is the reference log."""

    def __init__(
        self,
        ddb: Any,
        table: str,
        *,
        rate: float = 60,
        keys: int = 150,
        delete_ratio: float = 0.1,
        seed: int = 11,
        tick: float = 0.1,
    ) -> None:
        self.ddb = ddb
        self.table = table
        self.rate = rate
        self.keys = [f"k{n:04d}" for n in range(keys)]
        self.delete_ratio = delete_ratio
        self.tick = tick
        self.log = ReferenceLog()
        self.error: BaseException | None = None
        self.write_errors = 0
        """Batches whose request failed (throttled, timed out): retried; counted here."""
        self._rng = random.Random(seed)
        self._versions: dict[str, int] = {}
        self._present: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-generator", daemon=True)

    # -- control ------------------------------------------------------------------------------

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self) -> list[Change]:
        """Stop writing (the batch in flight finishes); returns the reference log's changes."""
        self._stop.set()
        self._thread.join(timeout=120)
        if self._thread.is_alive():
            raise AssertionError("the load generator did not stop within 120s")
        if self.error is not None:
            raise AssertionError(f"the load generator failed: {self.error!r}")
        return self.log.changes()

    @property
    def written(self) -> int:
        return len(self.log.entries)

    def write_poison(self, key: str, payload_bytes: int) -> Change:
        """One put of a dedicated key whose item is ``payload_bytes`` large (a record the
        processor cannot handle); the key is never written again."""
        change = Change(key, 1, "put")
        item = {"pk": {"S": key}, "version": {"N": "1"}, "pad": {"S": "x" * payload_bytes}}
        self.ddb.put_item(TableName=self.table, Item=item)
        self.log.extend([change], time.time(), poison=True)
        return change

    # -- writing ------------------------------------------------------------------------------

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - started) * self.rate) - self.written
                if due > 0:
                    self._write(self._plan(min(due, BATCH)))
                    continue
                self._stop.wait(self.tick)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def _plan(self, count: int) -> list[Change]:
        """The next ``count`` changes, each key at most once."""
        keys = self._rng.sample(self.keys, count)
        changes = []
        for key in keys:
            if key in self._present and self._rng.random() < self.delete_ratio:
                changes.append(Change(key, self._versions[key], "delete"))
            else:
                changes.append(Change(key, self._versions.get(key, 0) + 1, "put"))
        return changes

    def _write(self, changes: list[Change]) -> None:
        requests: list[dict[str, Any]] = []
        for change in changes:
            if change.op == "delete":
                requests.append({"DeleteRequest": {"Key": {"pk": {"S": change.key}}}})
            else:
                item = {"pk": {"S": change.key}, "version": {"N": str(change.version)}}
                requests.append({"PutRequest": {"Item": item}})
        pending: dict[str, Any] = {self.table: requests}
        attempts = 0
        while pending:
            try:
                pending = (
                    self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                )
            except Exception:
                # A request that failed may still have been applied: the whole batch is sent
                # again (puts and deletes of the same versions are idempotent), and only an
                # acknowledged batch enters the log.
                attempts += 1
                self.write_errors += 1
                if attempts >= 20:
                    raise
                self._stop.wait(min(2.0, 0.1 * attempts))
        for change in changes:
            self._versions[change.key] = change.version
            if change.op == "put":
                self._present.add(change.key)
            else:
                self._present.discard(change.key)
        self.log.extend(changes, time.time())
