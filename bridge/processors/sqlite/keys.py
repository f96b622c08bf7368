"""Key values as SQLite holds them: the one rule by which both SQLite files (the processor's
and ``bridge replica``'s) store a primary key, so that distinct DynamoDB keys stay distinct rows.

SQLite's ``NUMERIC`` affinity turns a number into a 64-bit integer or a double, so DynamoDB
numbers (38 significant digits) that differ beyond the 15th digit, or beyond 2^63, would
become one row, and deleting one would delete the other. A number key column is therefore
declared without a type (no affinity: SQLite keeps each value as it is bound), and each
number is bound as

- an INTEGER when it is integral and within 64 bits;
- else a REAL when the nearest double's shortest decimal form (Python's ``repr``) is the
  number itself (``0.1``, ``-0.5``, ``1E+20``): every number written with up to 15
  significant digits, and reading the double back as that form gives the number again;
- else its canonical text (``bridge.item_json.canonical_number``, trailing zeros of a
  fraction trimmed as DynamoDB trims them).

No two numbers get the same value: integers within 64 bits are themselves; a double is
claimed only by the one number its shortest form spells; a canonical text belongs to one
number; and SQLite never finds a value of one storage class equal to another's (an INTEGER
and a REAL compare by value, but the REALs here are never integers within 64 bits).
docs/sqlite.md says how to query them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any

from bridge.item_json import canonical_number

SqlValue = int | float | str | bytes

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UNROUNDED = Context(prec=1000, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""For ``normalize``, which rounds to its context's precision (28 digits by default)."""


def number_value(text: str) -> int | float | str:
    """The SQL value of a DynamoDB number written as text: the wire's, or canonical."""
    digits = text[1:] if text[:1] == "-" else text
    if digits.isdigit() and len(digits) <= 18:  # below 10**18 < 2**63: the common case
        return int(text)
    canonical = canonical_number(text)
    digits = canonical[1:] if canonical[:1] == "-" else canonical
    if digits.isdigit():  # integral: canonical text is plain integer digits
        integer = int(canonical)
        if _INT64_MIN <= integer <= _INT64_MAX:
            return integer
    number = Decimal(canonical)
    double = float(number)
    if math.isfinite(double) and Decimal(repr(double)) == number:
        return double
    if digits.isdigit():
        return canonical
    # DynamoDB trims trailing zeros itself; trimming them here too makes the rule one of
    # values alone (1.10 and 1.1 are one number, hence one row).
    return str(number.normalize(_UNROUNDED))


def number_of(value: Any) -> int | float | str:
    """``number_value`` of a number as JSON or Python holds it: an ``int`` or ``Decimal``, or
    the text the portable form writes for numbers a JSON reader would round."""
    if type(value) is int:
        return value if _INT64_MIN <= value <= _INT64_MAX else number_value(str(value))
    if isinstance(value, str | Decimal):
        return number_value(str(value))
    if type(value) is float:  # not written by bridge; its shortest form is what it says
        return number_value(repr(value))
    raise ValueError(f"not a DynamoDB number: {value!r}")


def binary_of(value: str | bytes | bytearray | memoryview) -> bytes:
    """Binary as bytes: base64 text (the wire, the JSON forms) decoded, bytes as they are."""
    if isinstance(value, str):
        return base64.b64decode(value, validate=True)
    return bytes(value)


def text_of(value: Any) -> str:
    """A string key; a number under a column an older bridge typed as text, as its
    canonical text (what such a column stored for it)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return canonical_number(str(value))
    raise ValueError(f"not a string key: {value!r}")


PLAIN_KEY: Mapping[str, Callable[[Any], SqlValue]] = {
    "S": text_of,
    "N": number_of,
    "B": binary_of,
}
"""Per DynamoDB type letter: the SQL value of a key attribute given as a plain value (the
Kafka envelope's portable JSON, or Python's)."""


def wire_key(kind: str, attribute: Mapping[str, Any]) -> SqlValue:
    """The SQL value of a key attribute in DynamoDB JSON (``{"N": "5"}``) of type ``kind``."""
    if kind == "S":
        text: str = attribute["S"]
        return text
    if kind == "N":
        return number_value(attribute["N"])
    return binary_of(attribute["B"])
