"""The independent checker: what the sinks hold, judged against the reference log.

It reads only the sinks (the Kafka topic from its beginning with a plain consumer, the SQLite
replica file with ``sqlite3``, the dead-letter file) and what the test recorded (the reference
log, the fault windows and the lease table's history); never the workers' own view of what
they did. The judgement (``judge``) is pure, so it is tested on synthetic inputs.

- **lost**: acknowledged changes the sink never showed (nor the dead-letter file, for a
  record expected there). Must be 0, or exactly what the workers reported lost to retention.
- **duplicates**: a stream record (shard, sequence number) delivered more than once. Each
  must fall in a fault window: its shard's checkpoint when the fault hit was before it, its
  first copy was made before the window closed and a later one after it opened.
- **order violations**: per key, first appearances out of the reference log's order.
- **replica differences** (SQLite): keys where the replica and a Scan of the table differ;
  **backwards**: a row's version seen going down while the run went on.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bridge.core.positions import SHARD_END
from tests.chaos.generator import Change

SLACK = 1.0  # seconds: produce timestamps and lease samples are not instants


# -- what the sinks hold ----------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One change as a sink shows it: a Kafka message (``position`` = partition, offset)."""

    change: Change
    shard: str
    seq: str
    position: tuple[int, int]
    at: float
    """Wall-clock seconds the copy was made (the message's CreateTime)."""


def change_of(event: str, keys: Mapping[str, Any], new: Any, old: Any) -> Change:
    """The generator's identity of a change, from an envelope's or a record's images."""
    if event == "REMOVE":
        return Change(str(keys["pk"]), int(old["version"]), "delete")
    return Change(str(keys["pk"]), int(new["version"]), "put")


def delivery_of_message(partition: int, offset: int, value: bytes, created_ms: int) -> Delivery:
    envelope = orjson.loads(value)
    change = change_of(envelope["event"], envelope["keys"], envelope["new"], envelope["old"])
    shard, seq = envelope["shard"], envelope["seq"]
    return Delivery(change, shard, seq, (partition, offset), created_ms / 1e3)


def _plain(attribute: Mapping[str, Any]) -> Any:
    """The value of a DynamoDB JSON attribute, as far as the generator's items need."""
    ((kind, value),) = attribute.items()
    return int(value) if kind == "N" else value


def change_of_raw(raw: Mapping[str, Any]) -> Change:
    """A stream record in DynamoDB JSON (as the dead-letter file keeps it)."""
    data = raw["dynamodb"]
    keys = {name: _plain(value) for name, value in data["Keys"].items()}
    image = {
        name: {k: _plain(v) for k, v in data.get(name, {}).items()}
        for name in ("NewImage", "OldImage")
    }
    return change_of(raw["eventName"], keys, image["NewImage"], image["OldImage"])


def read_dead_letters(path: Path) -> list[Change]:
    if not path.exists():
        return []
    return [change_of_raw(orjson.loads(line)["record"]) for line in path.read_bytes().splitlines()]


def read_replica(path: Path, table: str) -> dict[str, int]:
    """Each row's key and version, read with sqlite3 alone."""
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        try:
            rows = db.execute(
                f"SELECT pk, json_extract(item, '$.version') FROM \"{table}\""
            ).fetchall()
        except sqlite3.OperationalError:  # the table is not there yet
            return {}
    return {str(pk): int(version) for pk, version in rows}


def scan_table(ddb: Any, table: str) -> dict[str, int]:
    """Each item's key and version, by a consistent Scan."""
    items: dict[str, int] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            items[item["pk"]["S"]] = int(item["version"]["N"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass(frozen=True)
class Backwards:
    key: str
    before: int
    after: int


class ReplicaSampler:
    """Reads the replica on a thread while the run goes on; a row whose version is seen
    lower than it was once seen (deleted or not in between) is recorded."""

    def __init__(self, path: Path, table: str, every: float = 0.2) -> None:
        self.path = path
        self.table = table
        self.every = every
        self.samples = 0
        self.highest: dict[str, int] = {}
        self.backwards: list[Backwards] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replica-sampler", daemon=True)

    def __enter__(self) -> ReplicaSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def observe(self, rows: Mapping[str, int]) -> None:
        self.backwards += versions_going_backwards(self.highest, rows)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                rows = read_replica(self.path, self.table)
            except sqlite3.Error:  # busy or being created: the next sample will do
                self.errors += 1
                continue
            self.observe(rows)


def versions_going_backwards(highest: dict[str, int], rows: Mapping[str, int]) -> list[Backwards]:
    """Compare a sample with the highest versions seen so far (updated in place)."""
    found = []
    for key, version in rows.items():
        before = highest.get(key)
        if before is not None and version < before:
            found.append(Backwards(key, before, version))
        else:
            highest[key] = version
    return found


# -- faults -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultWindow:
    """A fault and the time it may leave duplicates in: from when it hit (``start``) to when
    the last stale copy could still be made (``end``); wall-clock seconds."""

    kind: str
    target: str
    start: float
    end: float
    checkpoints: Mapping[str, str | None]
    """Each shard's durable checkpoint when the fault hit (the last sample before)."""
    only_these_shards: bool = False
    """A fault of one lease (a handoff) explains duplicates of its own shard only; a fault of
    a process explains those of every shard (one it held may have left the samples)."""

    def explains(self, shard: str, seq: str, first: float, again: float) -> bool:
        if self.only_these_shards and shard not in self.checkpoints:
            return False
        checkpoint = self.checkpoints.get(shard)
        if checkpoint == SHARD_END:
            return False
        after_checkpoint = (
            checkpoint is None or not checkpoint.isdigit() or int(seq) > int(checkpoint)
        )
        return after_checkpoint and first <= self.end + SLACK and again >= self.start - SLACK


# -- the verdict ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicate:
    shard: str
    seq: str
    change: Change
    copies: tuple[float, ...]
    window: str | None
    """The fault window that explains it (``kind:target``), or None."""


@dataclass(frozen=True)
class Verdict:
    scenario: str
    writes: int
    lost: int
    duplicates: int
    unexplained_duplicates: int
    order_violations: int
    replica_differences: int
    backwards: int
    unexpected: int
    """Changes a sink showed that nobody acknowledged (or a poison record in the sink)."""
    dead_letter_mismatch: int
    reported_lost: int
    duration: float = 0.0
    sinks: str = ""
    notes: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.lost == self.reported_lost
            and self.unexplained_duplicates == 0
            and self.order_violations == 0
            and self.replica_differences == 0
            and self.backwards == 0
            and self.unexpected == 0
            and self.dead_letter_mismatch == 0
        )

    def with_duration(self, duration: float) -> Verdict:
        return Verdict(**{**self.__dict__, "duration": duration})

    def as_json(self) -> dict[str, Any]:
        row = {k: v for k, v in self.__dict__.items() if k != "details"}
        row["notes"] = list(self.notes)
        row["verdict"] = "PASS" if self.ok else "FAIL"
        return row

    def explain(self) -> str:
        """Why it failed, with examples, for an assertion message."""
        lines = [f"{self.scenario}: {'PASS' if self.ok else 'FAIL'} {self.as_json()}"]
        lines += [f"  {name}: {examples}" for name, examples in self.details.items() if examples]
        return "\n".join(lines)


@dataclass
class Evidence:
    """Everything the checker judges: what was written, what the sinks hold, the faults."""

    scenario: str
    reference: Sequence[Change]
    deliveries: Sequence[Delivery] | None = None
    """The Kafka topic, in (partition, offset) order; None: no Kafka sink."""
    replica: Mapping[str, int] | None = None
    """The SQLite replica at the end; None: no SQLite sink."""
    table: Mapping[str, int] | None = None
    """A Scan of the table at the end (needed with a replica)."""
    backwards: Sequence[Backwards] = ()
    faults: Sequence[FaultWindow] = ()
    poison: Sequence[Change] = ()
    dead_letters: Sequence[Change] = ()
    reported_lost: int = 0


def judge(evidence: Evidence) -> Verdict:
    reference = list(evidence.reference)
    poison = set(evidence.poison)
    expected = [c for c in reference if c not in poison]
    details: dict[str, Any] = {}
    notes: list[str] = []
    lost = unexpected = order = dups = unexplained = 0
    sinks = []

    if evidence.deliveries is not None:
        sinks.append("kafka")
        seen = [d.change for d in sorted(evidence.deliveries, key=lambda d: d.position)]
        missing = set(expected) - set(seen)
        lost = len(missing)
        strange = (set(seen) - set(expected)) | (set(seen) & poison)
        unexpected += len(strange)
        order, wrong = order_violations(expected, seen)
        found = duplicates(evidence.deliveries, evidence.faults)
        dups = len(found)
        unexplained = sum(1 for d in found if d.window is None)
        by_window: dict[str, int] = defaultdict(int)
        for dup in found:
            by_window[dup.window or "unexplained"] += 1
        if by_window:
            notes.append(", ".join(f"{w}: {n}" for w, n in sorted(by_window.items())))
        details |= {
            "lost": sorted(missing)[:5],
            "unexpected": sorted(strange)[:5],
            "order": wrong[:3],
            "unexplained duplicates": [d for d in found if d.window is None][:3],
        }

    differences = 0
    if evidence.replica is not None:
        sinks.append("sqlite")
        table = evidence.table or {}
        replica = evidence.replica
        keys = replica.keys() | table.keys()
        differing = sorted(k for k in keys if replica.get(k) != table.get(k))
        differences = len(differing)
        details["replica differences"] = [
            (k, evidence.replica.get(k), table.get(k)) for k in differing[:5]
        ]
        details["backwards"] = list(evidence.backwards[:5])

    dead = set(evidence.dead_letters)
    mismatch = len(dead ^ poison) + (len(evidence.dead_letters) - len(dead))
    if poison or dead:
        notes.append(f"dead-lettered: {len(evidence.dead_letters)} (expected {len(poison)})")
        details["dead letters"] = sorted(dead ^ poison)[:5]
    if evidence.reported_lost:
        notes.append(f"workers reported {evidence.reported_lost} lost to retention")
    return Verdict(
        scenario=evidence.scenario,
        writes=len(reference),
        lost=lost,
        duplicates=dups,
        unexplained_duplicates=unexplained,
        order_violations=order,
        replica_differences=differences,
        backwards=len(evidence.backwards),
        unexpected=unexpected,
        dead_letter_mismatch=mismatch,
        reported_lost=evidence.reported_lost,
        sinks="+".join(sinks),
        notes=tuple(notes),
        details=details,
    )


def order_violations(
    reference: Iterable[Change], seen: Iterable[Change]
) -> tuple[int, list[tuple[str, list[int]]]]:
    """Per key, first appearances against the reference order (restricted to what was seen:
    a loss is counted as lost, not again as disorder). Returns the number of changes that
    first appeared before one the reference put earlier, and examples."""
    rank = {change: i for i, change in enumerate(reference)}
    firsts: dict[str, list[int]] = defaultdict(list)
    noted: set[Change] = set()
    for change in seen:
        if change in rank and change not in noted:
            noted.add(change)
            firsts[change.key].append(rank[change])
    count = 0
    examples = []
    for key, ranks in firsts.items():
        inversions = sum(1 for a, b in itertools.pairwise(ranks) if b < a)
        if inversions:
            count += inversions
            examples.append((key, ranks[:10]))
    return count, examples


def duplicates(deliveries: Iterable[Delivery], faults: Sequence[FaultWindow]) -> list[Duplicate]:
    """Records delivered more than once, each with the fault window that explains it."""
    copies: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
    for delivery in sorted(deliveries, key=lambda d: d.position):
        copies[(delivery.shard, delivery.seq)].append(delivery)
    found = []
    for (shard, seq), all_copies in copies.items():
        if len(all_copies) < 2:
            continue
        first = all_copies[0].at
        again = max(c.at for c in all_copies[1:])
        window = next(
            (f"{w.kind}:{w.target}" for w in faults if w.explains(shard, seq, first, again)),
            None,
        )
        found.append(
            Duplicate(shard, seq, all_copies[0].change, tuple(c.at for c in all_copies), window)
        )
    return found


# -- the report -------------------------------------------------------------------------------

COLUMNS = (
    ("scenario", 26),
    ("sinks", 12),
    ("writes", 7),
    ("lost", 5),
    ("dups", 5),
    ("unexpl.", 7),
    ("order", 5),
    ("replica", 7),
    ("backw.", 6),
    ("verdict", 7),
    ("secs", 6),
)


def report_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """The report: one line per scenario (rows as ``Verdict.as_json`` makes them)."""
    header = " ".join(name.ljust(width) for name, width in COLUMNS)
    lines = [header, "-" * len(header)]
    for row in rows:
        lost = str(row["lost"])
        if row.get("reported_lost"):
            lost += f"/{row['reported_lost']}r"
        values = (
            row["scenario"],
            row["sinks"],
            row["writes"],
            lost,
            row["duplicates"],
            row["unexplained_duplicates"],
            row["order_violations"],
            row["replica_differences"],
            row["backwards"],
            row["verdict"],
            f"{row['duration']:.0f}",
        )
        lines.append(" ".join(str(v).ljust(w) for v, (_, w) in zip(values, COLUMNS, strict=True)))
        for note in row.get("notes", []):
            lines.append(" " * 4 + note)
    return "\n".join(lines)
