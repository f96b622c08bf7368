"""Envelopes to changes, and the filter: pure, no Kafka, no SQLite."""

from __future__ import annotations

import orjson
import pytest

from bridge.processors.kafka import EnvelopeEncoder
from bridge.records import ChangeRecord
from bridge.replica import FilterConfig, ItemFilter
from bridge.replica._messages import BadMessageError, Delete, Fetched, Upsert, change_of
from tests.kafka.changes import from_stream, order_item

KEEP_ALL = ItemFilter()


def messages(record: ChangeRecord) -> list[Fetched]:
    encoder = EnvelopeEncoder("orders", include_old_image=True, tombstones=True)
    out: list[Fetched] = []
    for n, (key, value, headers) in enumerate(encoder.messages(record)):
        plain = {k: v.encode() if isinstance(v, str) else v or b"" for k, v in headers}
        out.append(Fetched(0, n, key, value, plain))
    return out


def test_insert_and_modify_put_the_new_image_as_the_envelope_encodes_it() -> None:
    item = order_item(3)
    keys = {"pk": item["pk"], "sk": item["sk"]}
    (message,) = messages(from_stream("MODIFY", keys, item, item, seq="42"))
    change = change_of(message, KEEP_ALL)
    assert isinstance(change, Upsert)
    assert change.table == "orders" and change.seq == "42"
    assert list(change.keys) == ["pk", "sk"]
    assert orjson.loads(change.item) == orjson.loads(message.value or b"")["new"]


def test_remove_and_its_tombstone_delete_by_key() -> None:
    keys = {"pk": "a", "sk": 1}
    envelope, tombstone = messages(from_stream("REMOVE", keys, None, {**keys, "v": 1}, seq="7"))
    types = (("pk", "S"), ("sk", "N"))  # the bridge-key-types header
    assert change_of(envelope, KEEP_ALL) == Delete("orders", keys, "7", types)
    assert change_of(tombstone, KEEP_ALL) == Delete("orders", keys, "7", types)  # its headers
    bare = Fetched(0, 9, tombstone.key, None)  # a tombstone from another producer
    assert change_of(bare, KEEP_ALL) == Delete(None, keys, None)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (b"{}", b"not json", "value is not JSON"),
        (b"{}", b"[1]", "not a JSON object"),
        (b"{}", b'{"table": "t", "event": "INSERT", "keys": {"pk": 1}}', "no 'seq'"),
        (None, None, "tombstone without a key"),
        (
            b"{}",
            b'{"table": "t", "event": "INSERT", "keys": {"pk": 1}, "seq": "1", "new": null}',
            "no new image",
        ),
    ],
)
def test_what_is_not_an_envelope_is_refused_naming_where(
    key: bytes | None, value: bytes | None, problem: str
) -> None:
    with pytest.raises(BadMessageError, match="partition 2 offset 5") as raised:
        change_of(Fetched(2, 5, key, value), KEEP_ALL)
    assert problem in str(raised.value)


def test_an_update_that_stops_matching_the_filter_deletes() -> None:
    keep = ItemFilter.from_config(FilterConfig(attribute="tenant", equals="t1"))
    keys = {"pk": "a"}
    (kept,) = messages(from_stream("INSERT", keys, {"pk": "a", "tenant": "t1"}, seq="1"))
    (moved,) = messages(from_stream("MODIFY", keys, {"pk": "a", "tenant": "t2"}, seq="2"))
    assert isinstance(change_of(kept, keep), Upsert)
    assert change_of(moved, keep) == Delete("orders", keys, "2", (("pk", "S"),))


def test_filter_by_key_prefix_and_by_path() -> None:
    by_prefix = ItemFilter.from_config(
        FilterConfig.model_validate({"key_prefix": {"attribute": "pk", "prefix": "t1#"}})
    )
    assert by_prefix.keeps({"pk": "t1#9"}, {})
    assert not by_prefix.keeps({"pk": "t2#9"}, {})
    assert not by_prefix.keeps({"id": "t1#9"}, {})

    by_path = ItemFilter.from_config(
        FilterConfig.model_validate({"attribute": "customer.region", "in": ["eu", 3]})
    )
    assert by_path.keeps({}, {"customer": {"region": "eu"}})
    assert by_path.keeps({}, {"customer": {"region": 3}})
    assert not by_path.keeps({}, {"customer": {"region": "us"}})
    assert not by_path.keeps({}, {"customer": "eu"})
    assert not by_path.keeps({}, {})

    flag = ItemFilter.from_config(FilterConfig(attribute="active", equals=True))
    assert flag.keeps({}, {"active": True})
    assert not flag.keeps({}, {"active": 1})  # true is not the number 1

    both = ItemFilter.from_config(
        FilterConfig.model_validate(
            {"key_prefix": {"attribute": "pk", "prefix": "t1"}, "attribute": "x", "equals": None}
        )
    )
    assert both.keeps({"pk": "t1a"}, {"x": None})
    assert not both.keeps({"pk": "t1a"}, {})
    assert not both.keeps({"pk": "t2a"}, {"x": None})
    assert ItemFilter().keeps_all
