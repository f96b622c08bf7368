"""DynamoDB JSON to plain JSON: the one rule set by which every sink writes an item.

The Kafka envelope, the SQLite processor's ``item`` column and ``bridge replica``'s file all
hold items as JSON; written by one set of rules, the same item is the same JSON wherever it
lands, and a consumer of one sink reads another's without surprises. docs/kafka.md and
docs/sqlite.md are the user-facing version of these rules.

- ``S`` is a string; ``BOOL`` is ``true``/``false``; ``NULL`` is ``null``; ``M`` is an
  object; ``L`` is an array.
- ``B`` is a string, base64 (standard alphabet, padded): the text the wire carries, or
  encoded from the bytes botocore's parser hands over.
- ``SS``, ``NS`` and ``BS`` are arrays in sorted order: strings by code point, numbers by
  value, binary by bytes. DynamoDB keeps a set's order to itself; sorting makes one item
  always the same bytes.
- A number has one canonical text: ``str()`` of its record-model value
  (``bridge.records.decode_number``), i.e. integer digits when it is integral (``1E+2`` is
  ``100``, ``-0`` is ``0``) and ``str(Decimal(text))`` otherwise (``1.50`` stays ``1.50``,
  ``0.0000001`` is ``1E-7``). It is written in one of two forms, chosen by the sink:

  - ``EXACT`` (the SQLite ``item`` column, JSON text stored as it is): every number a JSON
    number with its canonical text, never through a float.
  - ``PORTABLE`` (the Kafka envelope, read by any JSON parser, JavaScript's included):
    integers within ±(2^53 - 1) as JSON numbers, which every reader holds exactly; every
    other number as a JSON string of its canonical text, which no reader can round.

Conversion works straight from DynamoDB JSON (``raw``): decoding to Python values and
encoding them again would be most of the cost of forwarding an item. A record built by hand
from plain values is first encoded to DynamoDB JSON (``dynamodb_json``), so it takes the same
path and gives the same bytes.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from orjson import Fragment

from bridge.records import decode_number, encode_item

if TYPE_CHECKING:
    from bridge.records import ChangeRecord

SAFE_INTEGER = 2**53 - 1
"""The largest integer a 64-bit float, hence every JSON reader, holds exactly."""

Image = Mapping[str, Mapping[str, Any]]
"""DynamoDB JSON of an item: attribute name to a one-entry map such as ``{"N": "1.5"}``."""

# A fraction that is not integral (last digit not 0), without superfluous leading zeros and
# not so small that Decimal would print it in exponent form: its canonical text is itself.
_PLAIN_FRACTION = re.compile(r"-?(?:[1-9][0-9]*|0(?=\.0{0,5}[1-9]))\.[0-9]*[1-9]")


def canonical_number(text: str) -> str:
    """The canonical text of a DynamoDB number given as the wire writes it."""
    digits = text[1:] if text[:1] == "-" else text
    if digits.isdigit():
        return str(int(text))
    if _PLAIN_FRACTION.fullmatch(text):
        return text  # what str(Decimal(text)) gives, without raising from int() first
    return _canonical_text(decode_number(text))


def _canonical_text(number: int | Decimal) -> str:
    if isinstance(number, Decimal) and not number.is_finite():
        raise ValueError(f"not a DynamoDB number: {number}")  # no JSON text exists for it
    return str(number)


def _exact_number(text: str) -> Fragment:
    return Fragment(canonical_number(text))


def _exact_decoded(number: int | Decimal) -> Fragment:
    return Fragment(_canonical_text(number))


def _portable_number(text: str) -> int | str:
    digits = text[1:] if text[:1] == "-" else text
    if digits.isdigit() and len(digits) <= 15:  # below 10**15 < 2**53
        return int(text)
    if _PLAIN_FRACTION.fullmatch(text):
        return text
    return _portable_decoded(decode_number(text))


def _portable_decoded(number: int | Decimal) -> int | str:
    if isinstance(number, int) and -SAFE_INTEGER <= number <= SAFE_INTEGER:
        return number
    return _canonical_text(number)


def _base64_text(value: str | bytes) -> str:
    # On the wire binary already is base64; botocore's parser hands over bytes instead.
    if isinstance(value, str):
        return value
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _binary_bytes(value: str | bytes) -> bytes:
    return binascii.a2b_base64(value) if isinstance(value, str) else bytes(value)


class JsonForm:
    """The rules above with one of the two ways of writing numbers; the values it returns
    are ready for ``dumps`` (``orjson.Fragment`` for the exact form's numbers).

    The converters run for every attribute of every change forwarded, so they trade some
    repetition for speed: strings and short non-negative integers (most attributes) are
    handled inline, without a call, and give the same value in both forms; membership tests
    in order of how common the types are beat unpacking the one-entry dict; and they are
    closures over the form's number rules rather than methods, as they call one another for
    every nested value and a closure's call skips the method lookup. scripts/bench_kafka.py
    and scripts/bench_sqlite.py measure them.
    """

    __slots__ = ("item", "item_json", "item_like", "name", "value")

    item: Callable[[Image], dict[str, Any]]
    """An item image (``NewImage``, ``OldImage``, ``Keys``, a scanned item, an ``M``)."""
    value: Callable[[Mapping[str, Any]], Any]
    """One attribute value such as ``{"N": "1.5"}``."""
    item_like: Callable[[Image, Image, Mapping[str, Any]], dict[str, Any]]
    """``item_like(attributes, seen, seen_plain)`` is ``item(attributes)``, reusing the
    values of ``seen`` (already converted as ``seen_plain``) where an attribute is the same
    in both: a MODIFY's old image mostly repeats its new one, and the keys always do.
    Comparing two attributes is C code; converting one again is not."""
    item_json: Callable[[Image], bytes]
    """An item image as UTF-8 JSON bytes."""

    def __init__(
        self,
        name: str,
        number: Callable[[str], Any],
        decoded: Callable[[int | Decimal], Any],
    ) -> None:
        """``number`` gives a number's JSON value from its wire text (it is not called for
        short integers); ``decoded`` from its record-model value (a sorted NS's members)."""
        self.name = name

        def item(attributes: Image) -> dict[str, Any]:
            plain: dict[str, Any] = {}
            for key, attribute in attributes.items():
                if "S" in attribute:
                    plain[key] = attribute["S"]
                elif "N" in attribute:
                    text = attribute["N"]
                    plain[key] = int(text) if text.isdigit() and len(text) <= 15 else number(text)
                else:
                    plain[key] = other(attribute)
            return plain

        def value(attribute: Mapping[str, Any]) -> Any:
            if "S" in attribute:
                return attribute["S"]
            if "N" in attribute:
                text = attribute["N"]
                return int(text) if text.isdigit() and len(text) <= 15 else number(text)
            return other(attribute)

        def other(attribute: Mapping[str, Any]) -> Any:
            """``value`` of an attribute that is neither a string nor a number."""
            if "M" in attribute:
                return item(attribute["M"])
            if "L" in attribute:
                return [
                    element["S"]
                    if "S" in element
                    else item(element["M"])
                    if "M" in element
                    else value(element)
                    for element in attribute["L"]
                ]
            if "BOOL" in attribute:
                return bool(attribute["BOOL"])
            if "NULL" in attribute:
                return None
            if "SS" in attribute:
                return sorted(attribute["SS"])
            if "NS" in attribute:
                return [decoded(n) for n in sorted(map(decode_number, attribute["NS"]))]
            if "B" in attribute:
                return _base64_text(attribute["B"])
            if "BS" in attribute:
                return [_base64_text(b) for b in sorted(map(_binary_bytes, attribute["BS"]))]
            if attribute:
                raise ValueError(f"unknown DynamoDB attribute type {next(iter(attribute))!r}")
            raise ValueError("empty DynamoDB attribute value")

        def item_like(
            attributes: Image, seen: Image, seen_plain: Mapping[str, Any]
        ) -> dict[str, Any]:
            plain: dict[str, Any] = {}
            for key, attribute in attributes.items():
                if seen.get(key) == attribute:
                    plain[key] = seen_plain[key]
                elif "S" in attribute:
                    plain[key] = attribute["S"]
                else:
                    plain[key] = value(attribute)
            return plain

        def item_json(attributes: Image) -> bytes:
            return orjson.dumps(item(attributes))

        self.item = item
        self.value = value
        self.item_like = item_like
        self.item_json = item_json

    def __repr__(self) -> str:
        return f"JsonForm({self.name!r})"


EXACT = JsonForm("exact", _exact_number, _exact_decoded)
"""Every number a JSON number with its canonical text: for JSON stored as text (SQLite)."""

PORTABLE = JsonForm("portable", _portable_number, _portable_decoded)
"""Integers within ±(2^53 - 1) as JSON numbers, other numbers as strings: for JSON that any
parser reads (Kafka)."""


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Values a ``JsonForm`` returned (or JSON parsed back from them) as UTF-8 JSON bytes,
    compact; ``sort_keys`` sorts every object's keys, nested ones too (canonical JSON)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)


def dynamodb_json(record: ChangeRecord) -> Mapping[str, Any]:
    """The record's change as DynamoDB JSON (``Keys``, ``NewImage``, ``OldImage``): the
    ``dynamodb`` section the stream sent, or, for a record built by hand from plain values,
    those values encoded as the stream would have sent them."""
    stream_record: Mapping[str, Any] | None = record.raw.get("dynamodb")
    if stream_record is not None and "Keys" in stream_record:
        return stream_record
    built = {"Keys": encode_item(record.keys)}
    if record.new_image is not None:
        built["NewImage"] = encode_item(record.new_image)
    if record.old_image is not None:
        built["OldImage"] = encode_item(record.old_image)
    return built
