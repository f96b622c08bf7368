"""One codec for every sink: the rules of ``bridge.item_json``, and the Kafka envelope's ``new``
and the SQLite ``item`` of one change holding the same item."""

from __future__ import annotations

import base64
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.item_json import EXACT, PORTABLE, SAFE_INTEGER, canonical_number, dynamodb_json
from bridge.processors.kafka import EnvelopeEncoder
from bridge.processors.sqlite import SqliteProcessorFactory
from bridge.records import ChangeRecord, decode_number
from tests.kafka.changes import from_stream, from_values
from tests.sqlite.records import batch

EVERY_KIND: dict[str, Any] = {
    "pk": "order-1",
    "text": "naïve ☃",
    "small": 7,
    "negative": -12,
    "safe": SAFE_INTEGER,
    "big": 2**60 + 1,
    "huge": -(10**37),
    "fraction": Decimal("1.50"),
    "tiny": Decimal("0.0000001"),
    "integral": Decimal("1.5E+3"),
    "blob": b"\x00\xffbin",
    "empty_blob": b"",
    "strings": {"b", "a", "é", "Z"},
    "numbers": {3, Decimal("2.5"), 2**60, -1},
    "binaries": {b"\x02", b"\x01", b"\x01\x00"},
    "nested": {"map": {"deep": Decimal("0.1"), "list": [1, "x", None, True, {"n": 2**53}]}},
    "nothing": None,
    "yes": True,
    "no": False,
}


@pytest.mark.parametrize(
    ("attribute", "exact", "portable"),
    [
        pytest.param({"S": "a"}, '"a"', '"a"', id="string"),
        pytest.param({"BOOL": True}, "true", "true", id="bool"),
        pytest.param({"NULL": True}, "null", "null", id="null"),
        pytest.param({"N": "42"}, "42", "42", id="small-int"),
        pytest.param({"N": "007"}, "7", "7", id="leading-zeros"),
        pytest.param({"N": "-0"}, "0", "0", id="negative-zero"),
        pytest.param({"N": "1E+2"}, "100", "100", id="integral-exponent"),
        pytest.param({"N": "2.000"}, "2", "2", id="integral-fraction"),
        pytest.param({"N": "9007199254740991"}, "9007199254740991", "9007199254740991"),
        pytest.param({"N": "9007199254740992"}, "9007199254740992", '"9007199254740992"'),
        pytest.param({"N": "-9007199254740992"}, "-9007199254740992", '"-9007199254740992"'),
        pytest.param({"N": "1.50"}, "1.50", '"1.50"', id="fraction-keeps-its-zeros"),
        pytest.param({"N": "0.0000001"}, "1E-7", '"1E-7"', id="tiny-fraction"),
        pytest.param({"N": "-0.000001"}, "-0.000001", '"-0.000001"', id="small-fraction"),
        pytest.param({"N": "00.5"}, "0.5", '"0.5"', id="fraction-leading-zeros"),
        pytest.param({"B": "AP8="}, '"AP8="', '"AP8="', id="binary-as-the-wire-has-it"),
        pytest.param({"B": b"\x00\xff"}, '"AP8="', '"AP8="', id="binary-from-botocore"),
        pytest.param({"SS": ["b", "é", "a", "Z"]}, '["Z","a","b","é"]', '["Z","a","b","é"]'),
        pytest.param(
            {"NS": ["10", "2.5", "-1", "1E+20"]},
            "[-1,2.5,10,100000000000000000000]",
            '[-1,"2.5",10,"100000000000000000000"]',
            id="number-set-by-value",
        ),
        pytest.param(
            {"BS": ["Ag==", "AQA=", "AQ=="]},
            '["AQ==","AQA=","Ag=="]',
            '["AQ==","AQA=","Ag=="]',
            id="binary-set-by-bytes",
        ),
        pytest.param({"BS": [b"\x02", b"\x01"]}, '["AQ==","Ag=="]', '["AQ==","Ag=="]'),
        pytest.param(
            {"L": [{"N": "1"}, {"S": "x"}, {"M": {}}, {"N": "0.5"}]},
            '[1,"x",{},0.5]',
            '[1,"x",{},"0.5"]',
            id="list",
        ),
        pytest.param(
            {"M": {"b": {"N": "0.5"}, "a": {"NULL": True}}},
            '{"b":0.5,"a":null}',
            '{"b":"0.5","a":null}',
            id="map-keeps-its-order",
        ),
    ],
)
def test_each_type_follows_the_documented_rules(
    attribute: dict[str, Any], exact: str, portable: str
) -> None:
    assert EXACT.item_json({"v": attribute}) == b'{"v":' + exact.encode() + b"}"
    assert orjson.dumps(PORTABLE.value(attribute)) == portable.encode()


@pytest.mark.parametrize("attribute", [{}, {"X": "1"}, {"N": "NaN"}, {"N": "Infinity"}])
def test_what_is_not_dynamodb_json_is_refused(attribute: dict[str, Any]) -> None:
    for form in (EXACT, PORTABLE):
        with pytest.raises((ValueError, ArithmeticError)):
            form.value(attribute)


# DynamoDB's numbers: up to 38 significant digits, magnitudes 1E-130 to below 1E+126.
dynamodb_numbers = st.builds(
    lambda sign, digits, exponent: Decimal((sign, tuple(int(d) for d in str(digits)), exponent)),
    st.integers(0, 1),
    st.integers(0, 10**38 - 1),
    st.integers(-130, 125),
).filter(lambda d: d.is_zero() or Decimal("1E-130") <= abs(d) < Decimal("1E+126"))
# However the wire writes it: as str() does, in plain notation, in exponent notation.
wire_texts = st.tuples(dynamodb_numbers, st.sampled_from(["{}", "{:f}", "{:e}", "{:E}"])).map(
    lambda pair: pair[1].format(pair[0])
)


@settings(max_examples=500, deadline=None)
@given(text=wire_texts)
def test_exact_form_round_trips_every_dynamodb_number(text: str) -> None:
    stored = EXACT.item_json({"v": {"N": text}})
    read: Any = json.loads(stored, parse_float=Decimal)["v"]
    assert not isinstance(read, str)  # a JSON number, never a string
    assert Decimal(read) == Decimal(text)
    assert stored == b'{"v":' + canonical_number(text).encode() + b"}"
    orjson.loads(stored)  # valid JSON for a strict parser too


@settings(max_examples=500, deadline=None)
@given(text=wire_texts)
def test_every_number_has_one_canonical_text_in_both_forms(text: str) -> None:
    canonical = canonical_number(text)
    assert canonical == str(decode_number(text))  # the record model's value, printed
    assert canonical_number(canonical) == canonical
    portable = PORTABLE.value({"N": text})
    if isinstance(portable, int):
        assert abs(portable) <= SAFE_INTEGER and str(portable) == canonical
    else:
        assert portable == canonical
        number = decode_number(text)
        assert not isinstance(number, int) or abs(number) > SAFE_INTEGER


def test_a_record_built_by_hand_is_encoded_as_the_stream_would_send_it() -> None:
    keys = {"pk": "order-1"}
    by_hand = from_values("MODIFY", keys, EVERY_KIND, {**EVERY_KIND, "small": 6})
    streamed = from_stream("MODIFY", keys, EVERY_KIND, {**EVERY_KIND, "small": 6})
    built = dynamodb_json(by_hand)
    assert {name: built[name] for name in ("Keys", "NewImage", "OldImage")} == {
        name: streamed.raw["dynamodb"][name] for name in ("Keys", "NewImage", "OldImage")
    }
    assert dynamodb_json(streamed) is streamed.raw["dynamodb"]


# -- the Kafka envelope and the SQLite item of one change -------------------------------------


def same_item(portable: Any, exact: Any, where: str = "item") -> None:
    """The same value in its two forms: numbers equal by value (the portable form writes some
    as strings), everything else, set order included, identical."""
    if isinstance(exact, bool) or exact is None or isinstance(exact, str):
        assert portable == exact and type(portable) is type(exact), where
    elif isinstance(exact, int | Decimal):
        if isinstance(portable, int) and not isinstance(portable, bool):
            assert abs(portable) <= SAFE_INTEGER, where
        else:
            assert isinstance(portable, str), where
        assert Decimal(portable) == Decimal(exact), where
    elif isinstance(exact, list):
        assert isinstance(portable, list) and len(portable) == len(exact), where
        for n, (one, other) in enumerate(zip(portable, exact, strict=True)):
            same_item(one, other, f"{where}[{n}]")
    else:
        assert isinstance(exact, dict) and isinstance(portable, dict), where
        assert list(portable) == list(exact), where
        for name in exact:
            same_item(portable[name], exact[name], f"{where}.{name}")


async def test_the_kafka_envelope_and_the_sqlite_item_hold_the_same_item(
    tmp_path: Path,
) -> None:
    record: ChangeRecord = from_stream("INSERT", {"pk": "order-1"}, EVERY_KIND, seq="1")
    [(_, value, _)] = list(
        EnvelopeEncoder("orders", include_old_image=True, tombstones=False).messages(record)
    )
    factory = SqliteProcessorFactory(str(tmp_path / "replica.db"), "orders")
    await factory.open()
    try:
        await factory.create(record.shard_id).process(batch(record))
    finally:
        await factory.close()
    with sqlite3.connect(f"file:{factory.path}?mode=ro", uri=True) as db:
        ((stored,),) = db.execute("SELECT item FROM orders").fetchall()

    new = json.loads(value or b"", parse_float=Decimal)["new"]
    item = json.loads(stored, parse_float=Decimal)
    same_item(new, item)
    # and both hold what the table holds, set members in their documented order
    assert Decimal(item["huge"]) == -(10**37) and Decimal(new["fraction"]) == Decimal("1.50")
    assert item["fraction"] == Decimal("1.50") and str(item["fraction"]) == "1.50"
    assert base64.b64decode(item["blob"]) == EVERY_KIND["blob"] and item["empty_blob"] == ""
    assert item["strings"] == ["Z", "a", "b", "é"]
    assert item["numbers"] == [-1, Decimal("2.5"), 3, 2**60]
    assert item["binaries"] == ["AQ==", "AQA=", "Ag=="]


async def test_a_record_built_by_hand_lands_in_sqlite_as_a_streamed_one(tmp_path: Path) -> None:
    streamed = from_stream("INSERT", {"pk": "a"}, {**EVERY_KIND, "pk": "a"}, seq="1")
    by_hand = from_values("INSERT", {"pk": "b"}, {**EVERY_KIND, "pk": "b"}, seq="2")
    factory = SqliteProcessorFactory(str(tmp_path / "replica.db"), "orders")
    await factory.open()
    try:
        await factory.create(streamed.shard_id).process(batch(streamed, by_hand))
    finally:
        await factory.close()
    with sqlite3.connect(f"file:{factory.path}?mode=ro", uri=True) as db:
        (a, b) = [item for (item,) in db.execute("SELECT item FROM orders ORDER BY pk")]
    assert a.replace('"pk":"a"', '"pk":"b"') == b
