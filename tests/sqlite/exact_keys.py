"""Issue 22's number keys: eight sort keys that SQLite's NUMERIC affinity would fold into
fewer rows, two of them deleted, the changes in any order across items.

``12345678901234567890123`` and ``...124`` are one double; so are ``1`` and
``1.00000000000000001``; ``9007199254740993`` is the first integer a double cannot hold. The
deleted keys are each the twin of a kept one, so a file that merges them loses a kept item.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from pathlib import Path
from typing import Any

from bridge.records import ChangeRecord

SORT_KEYS = (
    "2",
    "12345678901234567890123",
    "12345678901234567890124",
    "1",
    "1.00000000000000001",
    "9007199254740992",
    "9007199254740993",
    "-0.5",
)
DELETED = ("12345678901234567890124", "1")
KEPT = tuple(key for key in SORT_KEYS if key not in DELETED)
PK = "tenant#1"


def image(sort_key: str) -> dict[str, Any]:
    """The item with this sort key, in DynamoDB JSON; its attributes repeat the number."""
    return {
        "pk": {"S": PK},
        "sk": {"N": sort_key},
        "copy": {"N": sort_key},
        "text": {"S": sort_key},
        "set": {"NS": [sort_key, "7"]},
    }


def shuffled_changes(seed: int, *, shard: str = "shardId-0001") -> list[ChangeRecord]:
    """Each key inserted, the ``DELETED`` ones then removed, items interleaved at random (an
    item's own changes in order). Sequence numbers grow along the stream and have from 21 to
    39 digits, so text order and number order differ unless ``_seq`` is padded."""
    pending = {key: ["INSERT", "REMOVE"] if key in DELETED else ["INSERT"] for key in SORT_KEYS}
    rng = random.Random(seed)
    records: list[ChangeRecord] = []
    while pending:
        key = rng.choice(sorted(pending))
        event = pending[key].pop(0)
        if not pending[key]:
            del pending[key]
        n = len(records)
        body: dict[str, Any] = {
            "Keys": {"pk": {"S": PK}, "sk": {"N": key}},
            "SequenceNumber": str(10 ** (20 + 2 * n) + n),
            "SizeBytes": 100,
            "ApproximateCreationDateTime": 1_767_323_045 + n,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if event == "INSERT":
            body["NewImage"] = image(key)
        else:
            body["OldImage"] = image(key)
        records.append(ChangeRecord.from_raw({"eventName": event, "dynamodb": body}, shard))
    return records


def table_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    """``(sk, typeof(sk), item, _seq)`` of every row, in ``_seq`` order."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(
            f'SELECT sk, typeof(sk), item, _seq FROM "{table}" ORDER BY _seq'
        ).fetchall()


def exact_sort_keys(path: Path, table: str) -> set[str]:
    """The sort keys of the rows as the item column holds them (JSON text, exact)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {text for (text,) in db.execute(f"""SELECT item ->> '$.text' FROM "{table}" """)}
