"""The message of a change, without a broker: envelope fields, key bytes, lossless values."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.processors.api import SnapshotBatch
from bridge.processors.kafka import EnvelopeEncoder, canonical_key
from bridge.processors.kafka._snapshot import SnapshotEncoder
from bridge.records import ChangeRecord, encode_item
from tests.kafka.changes import BUILDERS, SHARD, WHEN_MS, from_stream, from_values, order_item

Builder = Callable[..., ChangeRecord]


def encoder(**options: bool) -> EnvelopeEncoder:
    return EnvelopeEncoder(
        "orders",
        include_old_image=options.get("include_old_image", True),
        tombstones=options.get("tombstones", False),
    )


@pytest.mark.parametrize("build", BUILDERS)
def test_envelope_has_every_field_of_the_design(build: Builder) -> None:
    record = build(
        "MODIFY",
        {"pk": "a", "sk": 1},
        {"pk": "a", "sk": 1, "v": 2},
        {"pk": "a", "sk": 1, "v": 1},
        seq="100000000000000000042",
    )
    [(key, value, headers)] = list(encoder().messages(record))
    assert value is not None
    assert orjson.loads(value) == {
        "table": "orders",
        "event": "MODIFY",
        "keys": {"pk": "a", "sk": 1},
        "new": {"pk": "a", "sk": 1, "v": 2},
        "old": {"pk": "a", "sk": 1, "v": 1},
        "seq": "100000000000000000042",
        "shard": SHARD,
        "ts": WHEN_MS,
    }
    assert key == b'{"pk":"a","sk":1}'
    assert headers == [
        ("bridge-event", b"MODIFY"),
        ("bridge-table", b"orders"),
        ("bridge-shard", SHARD.encode()),
        ("bridge-seq", b"100000000000000000042"),
        ("bridge-key-types", b'{"pk":"S","sk":"N"}'),
    ]


@pytest.mark.parametrize("build", BUILDERS)
def test_key_is_canonical_json_whatever_the_attribute_order(build: Builder) -> None:
    one = build("INSERT", {"sk": 5, "pk": "x"}, {"pk": "x", "sk": 5})
    two = build("INSERT", {"pk": "x", "sk": 5}, {"sk": 5, "pk": "x"})
    assert next(encoder().messages(one))[0] == next(encoder().messages(two))[0]
    assert next(encoder().messages(one))[0] == b'{"pk":"x","sk":5}'


@pytest.mark.parametrize(
    ("value", "as_json"),
    [
        pytest.param(7, "7", id="small-int"),
        pytest.param(-(2**53 - 1), "-9007199254740991", id="smallest-safe-int"),
        pytest.param(2**53, '"9007199254740992"', id="int-beyond-53-bits"),
        pytest.param(-(10**37), '"-' + "1" + "0" * 37 + '"', id="38-digit-int"),
        pytest.param(Decimal("1.50"), '"1.50"', id="fraction"),
        pytest.param(Decimal("-0.000001"), '"-0.000001"', id="small-fraction"),
        pytest.param(Decimal("0.0000001"), '"1E-7"', id="tiny-fraction"),
        pytest.param(Decimal("-12.5"), '"-12.5"', id="negative-fraction"),
        pytest.param(Decimal("1.5E+3"), "1500", id="integral-exponent"),
        pytest.param(Decimal("2.0"), "2", id="integral-decimal"),
        pytest.param(b"\x00\xffbin", '"AP9iaW4="', id="binary"),
        pytest.param({"b", "a"}, '["a","b"]', id="string-set"),
        pytest.param({10, Decimal("2.5")}, '["2.5",10]', id="number-set"),
        pytest.param({b"\x02", b"\x01"}, '["AQ==","Ag=="]', id="binary-set"),
        pytest.param([1, "x", None, True], '[1,"x",null,true]', id="list"),
    ],
)
@pytest.mark.parametrize("build", BUILDERS)
def test_values_are_encoded_by_the_documented_rules(
    build: Builder, value: Any, as_json: str
) -> None:
    record = build("INSERT", {"pk": "a"}, {"pk": "a", "v": value})
    [(_, encoded, _)] = list(encoder().messages(record))
    assert encoded is not None
    new = orjson.loads(encoded)["new"]
    assert orjson.dumps(new["v"]) == as_json.encode()


def test_lossless_values_read_back_exactly() -> None:
    item = order_item(12)
    [(_, encoded, _)] = list(encoder().messages(from_stream("INSERT", {"pk": "a"}, item)))
    assert encoded is not None
    new = orjson.loads(encoded)["new"]
    assert Decimal(new["price"]) == item["price"]
    assert int(new["big"]) == item["big"]
    assert base64.b64decode(new["blob"]) == item["blob"]
    assert int(new["nested"]["map"]["deep"]) == 2**53
    assert [Decimal(str(n)) for n in new["nums"]] == sorted(item["nums"])


@pytest.mark.parametrize("build", BUILDERS)
def test_remove_gets_a_tombstone_only_when_asked(build: Builder) -> None:
    record = build("REMOVE", {"pk": "a"}, None, {"pk": "a", "v": 1})
    plain = list(encoder().messages(record))
    with_tombstone = list(encoder(tombstones=True).messages(record))
    assert len(plain) == 1 and orjson.loads(plain[0][1] or b"")["new"] is None
    assert len(with_tombstone) == 2
    (key, envelope, headers), (tomb_key, tombstone, tomb_headers) = with_tombstone
    assert envelope == plain[0][1] and tombstone is None
    assert (tomb_key, tomb_headers) == (key, headers)
    insert = build("INSERT", {"pk": "a"}, {"pk": "a"})
    assert len(list(encoder(tombstones=True).messages(insert))) == 1


@pytest.mark.parametrize("build", BUILDERS)
def test_old_image_can_be_left_out(build: Builder) -> None:
    record = build("MODIFY", {"pk": "a"}, {"pk": "a", "v": 2}, {"pk": "a", "v": 1})
    [(_, encoded, _)] = list(encoder(include_old_image=False).messages(record))
    assert orjson.loads(encoded or b"")["old"] is None


def test_canonical_key_sorts_nested_maps_too() -> None:
    assert canonical_key({"b": 1, "a": {"y": 1, "x": b"\x01"}}) == b'{"a":{"x":"AQ==","y":1},"b":1}'


# -- both encoding paths agree, whatever the item --------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).filter(
        lambda d: abs(d) < Decimal(10) ** 30
    ),
)
scalars = st.one_of(st.text(max_size=8), numbers, st.binary(max_size=8), st.booleans(), st.none())
sets = st.one_of(
    st.frozensets(st.text(max_size=5), min_size=1, max_size=4),
    st.frozensets(st.integers(-(2**60), 2**60), min_size=1, max_size=4),
    st.frozensets(st.binary(max_size=5), min_size=1, max_size=4),
)
values = st.recursive(
    st.one_of(scalars, sets),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)
items = st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(keys=st.fixed_dictionaries({"pk": st.one_of(st.text(max_size=8), numbers)}), new=items)
def test_stream_records_and_hand_built_records_give_the_same_bytes(
    keys: dict[str, Any], new: dict[str, Any]
) -> None:
    image = {**new, **keys}
    wire = list(encoder(tombstones=True).messages(from_stream("MODIFY", keys, image, image)))
    plain = list(encoder(tombstones=True).messages(from_values("MODIFY", keys, image, image)))
    assert wire == plain


@settings(max_examples=300, deadline=None)
@given(
    keys=st.fixed_dictionaries({"pk": st.one_of(st.text(max_size=8), numbers)}),
    new=items,
    old=items,
    shared=items,
)
def test_an_old_image_sharing_attributes_with_the_new_gives_the_same_bytes(
    keys: dict[str, Any], new: dict[str, Any], old: dict[str, Any], shared: dict[str, Any]
) -> None:
    # The old image reuses what it shares with the new one (and the keys what they share
    # with either image): the bytes must not show it.
    after = {**shared, **new, **keys}
    before = {**old, **shared, **keys}
    for event, new_image, old_image in [
        ("MODIFY", after, before),
        ("REMOVE", None, before),
        ("INSERT", after, None),
    ]:
        wire = list(encoder().messages(from_stream(event, keys, new_image, old_image)))
        plain = list(encoder().messages(from_values(event, keys, new_image, old_image)))
        assert wire == plain


ONE_ENCODER = encoder()  # its cache of the last creation time carries over between examples


@settings(max_examples=500, deadline=None)
@given(
    at=st.one_of(
        st.floats(min_value=0, max_value=7_000_000_000, allow_nan=False),
        st.integers(min_value=0, max_value=7_000_000_000),
        st.integers(min_value=1_500_000_000_000, max_value=2_000_000_000_000).map(
            lambda ms: ms / 1000
        ),
        st.sampled_from([1767323045.6785, 0.0000005, 1.9999995, 1700000000, 1700000000.0]),
    )
)
def test_ts_is_the_records_creation_time_in_epoch_milliseconds(at: float) -> None:
    record = from_stream("INSERT", {"pk": "a"}, {"pk": "a"})
    record.raw["dynamodb"]["ApproximateCreationDateTime"] = at
    [(_, value, _)] = list(ONE_ENCODER.messages(record))
    since_epoch = record.approximate_creation_time - datetime(1970, 1, 1, tzinfo=UTC)
    assert orjson.loads(value)["ts"] == since_epoch // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    "text",
    [
        *("0.0000001", "0.000001", "00.5", "1.50", "-0.000001", "2.0", "1E+2", "-0", "007"),
        *("0.10", "123456789012345", "1234567890123456", "9007199254740993", "-12.5"),
        "99999.99",
    ],
)
def test_numbers_as_the_wire_writes_them_follow_the_decoded_rules(text: str) -> None:
    # However a number is written, it encodes as its decoded value does.
    record = ChangeRecord.from_raw(
        {
            "eventName": "INSERT",
            "dynamodb": {
                "ApproximateCreationDateTime": WHEN_MS / 1000,
                "Keys": {"pk": {"S": "a"}},
                "NewImage": {"pk": {"S": "a"}, "v": {"N": text}, "l": {"L": [{"N": text}]}},
                "SequenceNumber": "1",
            },
        },
        SHARD,
    )
    decoded = from_values("INSERT", {"pk": "a"}, record.new_image, seq="1")
    assert list(encoder().messages(record)) == list(encoder().messages(decoded))


@pytest.mark.parametrize("build", BUILDERS)
def test_types_carry_the_keys_and_images_in_dynamodb_json(build: Builder) -> None:
    item, before = order_item(5), order_item(4)
    keys = {"pk": item["pk"], "sk": item["sk"]}
    record = build("MODIFY", keys, item, {**before, **keys})
    typed = EnvelopeEncoder("orders", include_old_image=True, tombstones=False, types=True)
    [(key, value, headers)] = list(typed.messages(record))
    [(plain_key, plain_value, plain_headers)] = list(encoder().messages(record))
    envelope = orjson.loads(value or b"")
    types = envelope.pop("types")
    assert envelope == orjson.loads(plain_value or b"")  # the rest as without types
    assert (key, headers) == (plain_key, plain_headers)
    wire = orjson.loads(orjson.dumps(encode_item(item), default=sorted_wire))
    wire = {name: _sorted_sets(v) for name, v in wire.items()}
    assert types["keys"] == {"pk": {"S": item["pk"]}, "sk": {"N": "5"}}
    assert {name: _sorted_sets(v) for name, v in types["new"].items()} == wire
    assert _sorted_sets(types["old"]["price"]) == {"N": "4.25"}
    assert types["new"]["blob"] == {"B": base64.b64encode(item["blob"]).decode()}


def test_a_snapshot_item_has_the_key_types_header_and_with_types_its_dynamodb_json() -> None:
    item = encode_item(order_item(6))
    page = SnapshotBatch("bridge-snapshot-1-0-of-1", 0, 1, 1, ["pk", "sk"], [item], 2, False)
    [(_, plain, plain_headers)] = SnapshotEncoder("orders").items(page)
    [(_, value, headers)] = SnapshotEncoder("orders", types=True).items(page)
    assert plain_headers == headers
    assert ("bridge-key-types", b'{"pk":"S","sk":"N"}') in headers
    envelope = orjson.loads(value)
    assert "types" not in orjson.loads(plain)
    assert envelope["types"]["keys"] == {"pk": {"S": "order-0006"}, "sk": {"N": "6"}}
    assert envelope["types"]["new"]["price"] == {"N": "6.25"}
    assert envelope["types"]["old"] is None


def sorted_wire(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(type(value))


def _sorted_sets(attribute: dict[str, Any]) -> dict[str, Any]:
    ((kind, value),) = attribute.items()
    return {kind: sorted(value, key=str) if kind in ("SS", "NS", "BS") else value}
