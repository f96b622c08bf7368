"""StreamSpecification's checks on their own: what DynamoDB refuses, in its words and order."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.local.emulator import SerializationError, ValidationError
from bridge.local.stream_specification import (
    VIEW_TYPES,
    StreamRequest,
    TableStream,
    check_stream_specification,
)

ENUM = "[OLD_IMAGE, KEYS_ONLY, NEW_AND_OLD_IMAGES, NEW_IMAGE]"
INVALID = "One or more parameter values were invalid: "


def refusal(operation: str, specification: Any, table: TableStream | None = None) -> str:
    with pytest.raises(ValidationError) as caught:
        check_stream_specification(operation, {"StreamSpecification": specification}, table)
    assert caught.value.code == "ValidationException" and caught.value.status == 400
    return caught.value.message


@pytest.mark.parametrize("operation", ["CreateTable", "UpdateTable"])
@pytest.mark.parametrize("view_type", VIEW_TYPES)
def test_the_four_view_types_pass(operation: str, view_type: str) -> None:
    specification = {"StreamEnabled": True, "StreamViewType": view_type}
    assert check_stream_specification(
        operation, {"StreamSpecification": specification}
    ) == StreamRequest(True, view_type)


@pytest.mark.parametrize("operation", ["CreateTable", "UpdateTable"])
@pytest.mark.parametrize("view_type", ["NEW_IMAGES", "OLD_IMAGES", "new_image", "", "ALL"])
def test_any_other_view_type_is_refused_with_the_enum(operation: str, view_type: str) -> None:
    assert refusal(operation, {"StreamEnabled": True, "StreamViewType": view_type}) == (
        f"1 validation error detected: Value '{view_type}' at "
        "'streamSpecification.streamViewType' failed to satisfy constraint: "
        f"Member must satisfy enum value set: {ENUM}"
    )


def test_shape_errors_come_first_and_together() -> None:
    """The request validator runs before any rule about what the request means, and reports
    every member it refuses at once."""
    assert refusal("CreateTable", {"StreamViewType": "NEW_IMAGES"}) == (
        "2 validation errors detected: Value null at 'streamSpecification.streamEnabled' "
        "failed to satisfy constraint: Member must not be null; Value 'NEW_IMAGES' at "
        "'streamSpecification.streamViewType' failed to satisfy constraint: Member must "
        f"satisfy enum value set: {ENUM}"
    )
    assert refusal("UpdateTable", {}) == (
        "1 validation error detected: Value null at 'streamSpecification.streamEnabled' "
        "failed to satisfy constraint: Member must not be null"
    )


@pytest.mark.parametrize(
    ("operation", "specification", "message"),
    [
        (
            "CreateTable",
            {"StreamEnabled": True},
            "Table is being created with a stream enabled, UpdateViewType is required",
        ),
        (
            "CreateTable",
            {"StreamEnabled": False, "StreamViewType": "NEW_IMAGE"},
            "Table is being created with a stream disabled, UpdateViewType should not be specified",
        ),
        (
            "UpdateTable",
            {"StreamEnabled": True},
            "If stream is being enabled then UpdateViewType is required",
        ),
        (
            "UpdateTable",
            {"StreamEnabled": False, "StreamViewType": "KEYS_ONLY"},
            "If stream is being disabled, then UpdateViewType must not be specified",
        ),
    ],
)
def test_a_view_type_goes_with_an_enabled_stream_only(
    operation: str, specification: dict[str, object], message: str
) -> None:
    assert refusal(operation, specification) == INVALID + message


def test_update_table_must_change_the_stream_it_names() -> None:
    on, off = TableStream("orders", enabled=True), TableStream("orders", enabled=False)
    enable = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert refusal("UpdateTable", enable, on) == (
        "Table already has an enabled stream: TableName: orders"
    )
    assert refusal("UpdateTable", {"StreamEnabled": False}, off) == (
        "Table has no stream to disable: TableName: orders"
    )
    request = {"StreamSpecification": enable}
    assert check_stream_specification("UpdateTable", request, off) == StreamRequest(
        True, "NEW_IMAGE"
    )
    disable = {"StreamSpecification": {"StreamEnabled": False}}
    assert check_stream_specification("UpdateTable", disable, on) == StreamRequest(False, None)


def test_the_shape_is_judged_before_the_table() -> None:
    on = TableStream("orders", enabled=True)
    message = refusal("UpdateTable", {"StreamEnabled": True, "StreamViewType": "OLD_IMAGES"}, on)
    assert message.startswith("1 validation error detected: Value 'OLD_IMAGES'")


@pytest.mark.parametrize(
    "specification",
    [
        "NEW_IMAGE",
        {"StreamEnabled": "true", "StreamViewType": "NEW_IMAGE"},
        {"StreamEnabled": True, "StreamViewType": 3},
    ],
)
def test_members_of_the_wrong_type_are_not_json_the_service_reads(specification: Any) -> None:
    with pytest.raises(SerializationError):
        check_stream_specification("CreateTable", {"StreamSpecification": specification})


def test_requests_without_a_stream_specification_are_not_judged() -> None:
    assert check_stream_specification("CreateTable", {"TableName": "t"}) is None
    assert check_stream_specification("UpdateTable", {"StreamSpecification": None}) is None
    bad = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGES"}}
    assert check_stream_specification("DescribeTable", bad) is None
