"""Reading request members the way the service validates them: wrong or missing is a 400."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.local.emulator._errors import ValidationError


def optional_string(request: Mapping[str, object], name: str) -> str | None:
    value = request.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name} must be a non-empty string")
    return value


def required_string(request: Mapping[str, object], name: str) -> str:
    value = optional_string(request, name)
    if value is None:
        raise ValidationError(
            f"1 validation error detected: Value null at '{name}' failed to "
            "satisfy constraint: Member must not be null"
        )
    return value


def bounded_int(request: Mapping[str, object], name: str, default: int, low: int, high: int) -> int:
    value = request.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(
            f"1 validation error detected: Value {value!r} at '{name}' failed to satisfy "
            f"constraint: Member must have value between {low} and {high}"
        )
    return value


def optional_object(request: Mapping[str, object], name: str) -> Mapping[str, object] | None:
    value = request.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{name} must be an object")
    return {str(key): item for key, item in value.items()}
