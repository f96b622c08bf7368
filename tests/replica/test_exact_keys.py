"""Exact keys at the edge: the changes of ``tests/sqlite/exact_keys.py`` published as envelopes
and applied by ``bridge replica``'s store, in any order across items, give the same rows as the
SQLite processor's file; with ``types`` the same ``item`` JSON too."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
import pytest

from bridge import item_json
from bridge.item_json import PORTABLE
from bridge.processors.kafka import EnvelopeEncoder
from bridge.processors.sqlite import SqliteProcessorFactory
from bridge.replica import ItemFilter, ReplicaStore
from bridge.replica._messages import Fetched, change_of
from bridge.replica._store import Entry
from tests.sqlite.exact_keys import KEPT, image, shuffled_changes, table_rows
from tests.sqlite.records import batch


def envelopes(seed: int, *, types: bool) -> list[Fetched]:
    encoder = EnvelopeEncoder("orders", include_old_image=True, tombstones=False, types=types)
    out: list[Fetched] = []
    for record in shuffled_changes(seed):
        for key, value, headers in encoder.messages(record):
            plain = {name: bytes(v) for name, v in headers if v is not None}
            out.append(Fetched(0, len(out), key, value, plain))
    return out


def edge_rows(tmp_path: Path, seed: int, *, types: bool) -> list[tuple[object, ...]]:
    store = ReplicaStore(tmp_path / f"edge-{seed}-{types}.db")
    store.open()
    try:
        fetched = envelopes(seed, types=types)
        rng = random.Random(seed)
        while fetched:  # batches of random sizes, as fetches give them
            size = rng.randint(1, 4)
            store.apply(
                "orders",
                [
                    Entry(m.partition, m.offset, 0, change_of(m, ItemFilter()))
                    for m in fetched[:size]
                ],
            )
            fetched = fetched[size:]
    finally:
        store.close()
    return table_rows(store.path, "orders")


async def processor_rows(tmp_path: Path, seed: int) -> list[tuple[object, ...]]:
    path = tmp_path / f"processor-{seed}.db"
    factory = SqliteProcessorFactory(str(path), "orders")
    await factory.open()
    try:
        await factory.create("shardId-0001").process(batch(*shuffled_changes(seed)))
    finally:
        await factory.close()
    return table_rows(path, "orders")


@pytest.mark.parametrize("seed", range(4))
async def test_the_edge_holds_the_same_keys_as_the_processor_whatever_the_order(
    tmp_path: Path, seed: int
) -> None:
    processor = await processor_rows(tmp_path, seed)
    plain = edge_rows(tmp_path, seed, types=False)
    typed = edge_rows(tmp_path, seed, types=True)
    assert sorted(json.loads(str(item))["text"] for _, _, item, _ in processor) == sorted(KEPT)
    # Keys, their storage classes and _seq: the same three files whatever came first.
    key_and_seq = [(sk, kind, seq) for sk, kind, _, seq in processor]
    assert [(sk, kind, seq) for sk, kind, _, seq in plain] == key_and_seq
    assert [(sk, kind, seq) for sk, kind, _, seq in typed] == key_and_seq
    # With types the item is the processor's, byte for byte; without, the portable form.
    assert [item for *_, item, _ in typed] == [item for *_, item, _ in processor]
    for *_, item, _ in plain:
        text = orjson.loads(str(item))["text"]
        assert orjson.loads(str(item)) == orjson.loads(item_json.dumps(PORTABLE.item(image(text))))
