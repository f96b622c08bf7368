"""StreamSpecification checked as DynamoDB checks it, before moto sees CreateTable or UpdateTable.

moto takes what it is given: a view type DynamoDB does not have (``NEW_IMAGES``) makes a stream
whose records carry no image at all, and ``StreamEnabled: false`` with a view type turns a
stream on. A suite written against that passes here and fails on AWS, so the endpoint refuses
what AWS refuses, with the service's own messages, in the service's order: the shape of the
request first (``1 validation error detected: ...``, before anything is looked up), then what
the request asks for, then whether the table's stream allows it (UpdateTable only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.local.emulator import SerializationError, ValidationError

CREATE_TABLE = "CreateTable"
UPDATE_TABLE = "UpdateTable"
CHECKED_OPERATIONS = frozenset({CREATE_TABLE, UPDATE_TABLE})

VIEW_TYPES = ("OLD_IMAGE", "KEYS_ONLY", "NEW_AND_OLD_IMAGES", "NEW_IMAGE")
"""The four view types, in the order DynamoDB's own message lists them."""

INVALID = "One or more parameter values were invalid: "

# What the request asks for that cannot be: (operation, StreamEnabled) -> message.
_VIEW_TYPE_REQUIRED = {
    CREATE_TABLE: "Table is being created with a stream enabled, UpdateViewType is required",
    UPDATE_TABLE: "If stream is being enabled then UpdateViewType is required",
}
_VIEW_TYPE_FORBIDDEN = {
    CREATE_TABLE: "Table is being created with a stream disabled, UpdateViewType should not be "
    "specified",
    UPDATE_TABLE: "If stream is being disabled, then UpdateViewType must not be specified",
}


@dataclass(frozen=True, slots=True)
class TableStream:
    """The table an UpdateTable names, as far as its stream is concerned."""

    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """A StreamSpecification that passed every check: what the request turns on or off."""

    enabled: bool
    view_type: str | None


def check_stream_specification(
    operation: str, request: Mapping[str, object], table: TableStream | None = None
) -> StreamRequest | None:
    """The request's StreamSpecification, or None when it has none; raises the error DynamoDB
    answers when it is wrong. ``table`` is the current state of an UpdateTable's table (None
    when unknown: moto then answers for the table, ResourceNotFoundException included)."""
    if operation not in CHECKED_OPERATIONS or request.get("StreamSpecification") is None:
        return None
    specification = request["StreamSpecification"]
    if not isinstance(specification, Mapping):
        raise SerializationError("StreamSpecification must be a structure")
    enabled = specification.get("StreamEnabled")
    view_type = specification.get("StreamViewType")
    if enabled is not None and not isinstance(enabled, bool):
        raise SerializationError("StreamSpecification.StreamEnabled must be a boolean")
    if view_type is not None and not isinstance(view_type, str):
        raise SerializationError("StreamSpecification.StreamViewType must be a string")
    violations = _constraint_violations(enabled, view_type)
    if violations:
        raise ValidationError(_detected(violations))
    assert enabled is not None
    if enabled and view_type is None:
        raise ValidationError(INVALID + _VIEW_TYPE_REQUIRED[operation])
    if not enabled and view_type is not None:
        raise ValidationError(INVALID + _VIEW_TYPE_FORBIDDEN[operation])
    if operation == UPDATE_TABLE and table is not None:
        if enabled and table.enabled:
            raise ValidationError(f"Table already has an enabled stream: TableName: {table.name}")
        if not enabled and not table.enabled:
            raise ValidationError(f"Table has no stream to disable: TableName: {table.name}")
    return StreamRequest(enabled, view_type)


def _constraint_violations(enabled: bool | None, view_type: str | None) -> list[str]:
    """The request's shape errors, each worded as DynamoDB's request validator words them."""
    violations = []
    if enabled is None:
        violations.append(
            "Value null at 'streamSpecification.streamEnabled' failed to satisfy constraint: "
            "Member must not be null"
        )
    if view_type is not None and view_type not in VIEW_TYPES:
        violations.append(
            f"Value '{view_type}' at 'streamSpecification.streamViewType' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(VIEW_TYPES)}]"
        )
    return violations


def _detected(violations: list[str]) -> str:
    count = len(violations)
    noun = "validation error" if count == 1 else "validation errors"
    return f"{count} {noun} detected: " + "; ".join(violations)
