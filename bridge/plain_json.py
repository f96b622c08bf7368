"""DynamoDB JSON to plain JSON, losslessly, straight from the wire form.

Numbers keep their exact decimal text (a JSON number with every digit DynamoDB stored, up to
38 significant digits, never rounded through a float); binary stays the base64 text it
travelled as; sets become arrays; ``NULL`` becomes ``null``. Working from ``raw`` skips
decoding to Python values and back, which is most of the cost of forwarding an item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


def image_json(image: Mapping[str, Mapping[str, Any]]) -> bytes:
    """One item image (``NewImage``/``OldImage``/``Keys``) as UTF-8 JSON bytes."""
    return orjson.dumps(plain_image(image))


def plain_image(image: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The item as orjson-ready values: numbers as exact ``orjson.Fragment``s."""
    return {name: plain_value(value) for name, value in image.items()}


def plain_value(attribute: Mapping[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind in {"S", "B", "BOOL"}:
        return value
    if kind == "N":
        return orjson.Fragment(_number(value))
    if kind == "M":
        return plain_image(value)
    if kind == "L":
        return [plain_value(element) for element in value]
    if kind == "NULL":
        return None
    if kind in {"SS", "BS"}:
        return list(value)
    if kind == "NS":
        return [orjson.Fragment(_number(element)) for element in value]
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _number(text: str) -> str:
    """DynamoDB numbers are valid JSON numbers except for a leading '+' or '.', or a trailing
    '.', which DynamoDB normalises away before storing; check rather than emit broken JSON."""
    if not text or text[0] in "+." or text[-1] == ".":
        raise ValueError(f"not a DynamoDB number: {text!r}")
    return text
