"""The record model and its DynamoDB JSON codec, against boto3's own serializer/deserializer."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from bridge.records import ChangeRecord, decode_item, decode_number, decode_value, encode_item

# --- values DynamoDB can hold --------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.builds(
        lambda mantissa, exponent: Decimal(mantissa).scaleb(exponent),
        st.integers(min_value=-(10**15), max_value=10**15),
        st.integers(min_value=-20, max_value=20),
    ),
)
scalars = st.one_of(st.text(max_size=10), numbers, st.binary(max_size=10), st.booleans(), st.none())
sets = st.one_of(
    st.frozensets(st.text(max_size=5), min_size=1, max_size=4).map(set),
    st.frozensets(st.integers(-1000, 1000), min_size=1, max_size=4).map(set),
    st.frozensets(st.binary(min_size=1, max_size=5), min_size=1, max_size=4).map(set),
)
values = st.recursive(
    st.one_of(scalars, sets),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
items = st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=8)


def bridge_terms(value: Any) -> Any:
    """boto3's output as bridge promises it: int where integral, plain bytes for Binary."""
    if isinstance(value, Binary):
        return bytes(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {k: bridge_terms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [bridge_terms(v) for v in value]
    if isinstance(value, set):
        return {bridge_terms(v) for v in value}
    return value


def assert_plain(value: Any) -> None:
    """No integral Decimal and no boto3 wrapper anywhere: equality alone would not notice."""
    assert not isinstance(value, Binary)
    if isinstance(value, Decimal):
        assert value != value.to_integral_value(), value
    if isinstance(value, dict):
        for v in value.values():
            assert_plain(v)
    if isinstance(value, list | set):
        for v in value:
            assert_plain(v)


@given(items)
def test_decoding_matches_boto3_in_bridge_terms(item: dict[str, Any]) -> None:
    serialized = {k: TypeSerializer().serialize(v) for k, v in item.items()}  # B as bytes
    expected = {k: TypeDeserializer().deserialize(v) for k, v in serialized.items()}

    decoded = decode_item(serialized)

    assert decoded == bridge_terms(expected)
    assert_plain(decoded)


@given(items)
def test_wire_encoding_round_trips(item: dict[str, Any]) -> None:
    encoded = encode_item(item)

    assert decode_item(encoded) == item
    assert_plain(decode_item(encoded))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", 7),
        ("-12", -12),
        ("1E+3", 1000),
        ("2.50", Decimal("2.5")),
        ("-0.5", Decimal("-0.5")),
        ("3.0", 3),
        ("1.5E+1", 15),
        ("12345678901234567890123456789012345678", 12345678901234567890123456789012345678),
        ("1E-130", Decimal("1E-130")),
    ],
)
def test_numbers_are_int_when_integral_and_decimal_otherwise(
    text: str, expected: int | Decimal
) -> None:
    number = decode_number(text)

    assert number == expected
    assert type(number) is type(expected)


def test_binary_on_the_wire_is_base64_and_decodes_to_bytes() -> None:
    assert encode_item({"b": b"\x00\xff"}) == {"b": {"B": "AP8="}}
    assert decode_value({"B": "AP8="}) == b"\x00\xff"
    assert decode_value({"BS": ["AP8=", "AQ=="]}) == {b"\x00\xff", b"\x01"}


def test_unknown_types_and_unencodable_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown DynamoDB attribute type"):
        decode_value({"X": "1"})
    with pytest.raises(TypeError, match="float"):
        encode_item({"f": 1.5})
    with pytest.raises(TypeError, match="empty sets"):
        encode_item({"s": set()})
    with pytest.raises(TypeError, match="only strings"):
        encode_item({"s": {"a", 1}})


# --- ChangeRecord --------------------------------------------------------------------------


def wire_record(**dynamodb: Any) -> dict[str, Any]:
    base = {
        "ApproximateCreationDateTime": 1_767_225_600.5,
        "Keys": {"pk": {"S": "a"}},
        "NewImage": {"pk": {"S": "a"}, "n": {"N": "2"}, "b": {"B": "AQ=="}},
        "OldImage": {"pk": {"S": "a"}, "n": {"N": "1.5"}},
        "SequenceNumber": "100000000000000000001",
        "SizeBytes": 64,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    return {
        "eventID": "e1",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": base | dynamodb,
    }


def test_from_raw_exposes_every_field_of_the_record_model() -> None:
    raw = wire_record()

    record = ChangeRecord.from_raw(raw, "shard-1")

    assert record.event == "MODIFY"
    assert record.keys == {"pk": "a"}
    assert record.new_image == {"pk": "a", "n": 2, "b": b"\x01"}
    assert record.old_image == {"pk": "a", "n": Decimal("1.5")}
    assert record.sequence_number == "100000000000000000001"
    assert record.approximate_creation_time == datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert record.shard_id == "shard-1"
    assert record.size_bytes == 64
    assert record.raw is raw


def test_images_are_decoded_only_when_read() -> None:
    # An image the decoder would reject: building the record must not touch it.
    record = ChangeRecord.from_raw(wire_record(NewImage={"x": {"?": 1}}), "s")

    assert record.sequence_number == "100000000000000000001"
    assert record.old_image == {"pk": "a", "n": Decimal("1.5")}
    with pytest.raises(ValueError, match="unknown DynamoDB attribute type"):
        _ = record.new_image


def test_images_missing_from_the_stream_view_are_none() -> None:
    raw = wire_record()
    del raw["dynamodb"]["NewImage"], raw["dynamodb"]["OldImage"]
    raw["eventName"] = "REMOVE"

    record = ChangeRecord.from_raw(raw, "s")

    assert (record.event, record.new_image, record.old_image) == ("REMOVE", None, None)
    assert record.keys == {"pk": "a"}


def test_botocore_shaped_records_decode_the_same() -> None:
    """aiobotocore hands binary as bytes and the creation time as a datetime."""
    wire = ChangeRecord.from_raw(wire_record(), "s")
    parsed = wire_record(
        ApproximateCreationDateTime=datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        NewImage={"pk": {"S": "a"}, "n": {"N": "2"}, "b": {"B": b"\x01"}},
    )

    botocore_record = ChangeRecord.from_raw(parsed, "s")

    assert botocore_record.new_image == wire.new_image
    assert botocore_record.approximate_creation_time == wire.approximate_creation_time


def test_records_are_immutable_values() -> None:
    lazy = ChangeRecord.from_raw(wire_record(), "s")
    eager = ChangeRecord(
        "MODIFY",
        {"pk": "a"},
        {"pk": "a", "n": 2, "b": b"\x01"},
        {"pk": "a", "n": Decimal("1.5")},
        "100000000000000000001",
        datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        "s",
        64,
        wire_record(),
    )

    assert lazy == eager
    assert lazy != ChangeRecord.from_raw(wire_record(SequenceNumber="2"), "s")
    with pytest.raises(AttributeError, match="immutable"):
        lazy.event = "INSERT"
    with pytest.raises(TypeError):
        hash(lazy)
    assert "100000000000000000001" in repr(lazy) and "'pk': 'a'" in repr(lazy)


def test_records_survive_pickling_for_other_processes() -> None:
    record = ChangeRecord.from_raw(wire_record(), "s")

    copy = pickle.loads(pickle.dumps(record))

    assert copy == record
    assert copy.new_image == {"pk": "a", "n": 2, "b": b"\x01"}
