"""DynamoDB JSON to plain JSON, losslessly, straight from the wire form.

Numbers keep their exact decimal text (a JSON number with every digit DynamoDB stored, up to
38 significant digits, never rounded through a float); binary stays the base64 text it
travelled as; sets become arrays; ``NULL`` becomes ``null``. Working from ``raw`` skips
decoding to Python values and back, which is most of the cost of forwarding an item.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson
from orjson import Fragment


def image_json(image: Mapping[str, Mapping[str, Any]]) -> bytes:
    """One item image (``NewImage``/``OldImage``/``Keys``) as UTF-8 JSON bytes."""
    return orjson.dumps(plain_image(image))


def plain_image(image: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The item as orjson-ready values: numbers as exact ``orjson.Fragment``s."""
    plain: dict[str, Any] = {}
    # Strings and numbers inline: they are most attributes, and a call per attribute is most
    # of the cost of this function.
    for name, attribute in image.items():
        if "S" in attribute:
            plain[name] = attribute["S"]
        elif "N" in attribute:
            plain[name] = Fragment(_number(attribute["N"]))
        else:
            plain[name] = plain_value(attribute)
    return plain


def plain_value(attribute: Mapping[str, Any]) -> Any:
    # Membership tests in order of how common the types are: this runs for every attribute
    # of every item forwarded, and beats unpacking the one-entry dict.
    if "S" in attribute:
        return attribute["S"]
    if "N" in attribute:
        return Fragment(_number(attribute["N"]))
    if "M" in attribute:
        return plain_image(attribute["M"])
    if "L" in attribute:
        return [plain_value(element) for element in attribute["L"]]
    if "BOOL" in attribute:
        return attribute["BOOL"]
    if "NULL" in attribute:
        return None
    if "B" in attribute:
        return _base64(attribute["B"])
    if "SS" in attribute:
        return list(attribute["SS"])
    if "NS" in attribute:
        return [Fragment(_number(element)) for element in attribute["NS"]]
    if "BS" in attribute:
        return [_base64(element) for element in attribute["BS"]]
    raise ValueError(f"unknown DynamoDB type in {dict(attribute)!r}")


def _base64(value: str | bytes) -> str:
    """Binary as base64 text: as the wire carries it, or encoded from botocore's bytes."""
    return value if isinstance(value, str) else base64.b64encode(value).decode("ascii")


def _number(text: str) -> str:
    """DynamoDB stores numbers normalised (no '+', no bare '.'), which makes them valid JSON
    numbers; check the cheap part rather than emit broken JSON from a malformed record."""
    if not text or text[0] == "+" or text[0] == "." or text[-1] == ".":
        raise ValueError(f"not a DynamoDB number: {text!r}")
    return text
