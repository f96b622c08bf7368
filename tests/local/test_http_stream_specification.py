"""StreamSpecification over HTTP: refused as DynamoDB refuses it, and each view type as it says.

moto alone takes ``NEW_IMAGES`` and makes a stream whose records carry no image; a suite that
passes against that fails on AWS. These tests see the endpoint only through boto3.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bridge.local import LocalEndpoint
from tests.local.stream_reading import endpoint_clients, read_stream

ENUM = "[OLD_IMAGE, KEYS_ONLY, NEW_AND_OLD_IMAGES, NEW_IMAGE]"
INVALID = "One or more parameter values were invalid: "


@pytest.fixture
def clients(local_endpoint: LocalEndpoint) -> tuple[Any, Any]:
    return endpoint_clients(local_endpoint.endpoint_url)


def table_request(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
        **extra,
    }


def refusal(call: Callable[..., object], **request: Any) -> str:
    """The message of a ValidationException, after checking it is one as AWS sends it."""
    with pytest.raises(ClientError) as caught:
        call(**request)
    response = caught.value.response
    assert response["Error"]["Code"] == "ValidationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
        "ValidationException"
    )
    message: str = response["Error"]["Message"]
    return message


@pytest.mark.parametrize("view_type", ["NEW_IMAGES", "new_image"])
def test_create_table_refuses_a_view_type_aws_does_not_have(
    clients: tuple[Any, Any], view_type: str
) -> None:
    ddb, _ = clients
    name = f"refused-{uuid.uuid4().hex[:8]}"
    specification = {"StreamEnabled": True, "StreamViewType": view_type}
    message = refusal(ddb.create_table, **table_request(name, StreamSpecification=specification))
    assert message == (
        f"1 validation error detected: Value '{view_type}' at "
        "'streamSpecification.streamViewType' failed to satisfy constraint: "
        f"Member must satisfy enum value set: {ENUM}"
    )
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName=name)


def test_create_table_wants_a_view_type_with_an_enabled_stream_only(
    clients: tuple[Any, Any], local_endpoint: LocalEndpoint
) -> None:
    ddb, _ = clients
    name = f"refused-{uuid.uuid4().hex[:8]}"
    assert refusal(
        ddb.create_table, **table_request(name, StreamSpecification={"StreamEnabled": True})
    ) == (INVALID + "Table is being created with a stream enabled, UpdateViewType is required")
    disabled = {"StreamEnabled": False, "StreamViewType": "NEW_IMAGE"}
    assert refusal(ddb.create_table, **table_request(name, StreamSpecification=disabled)) == (
        INVALID + "Table is being created with a stream disabled, UpdateViewType should not be "
        "specified"
    )
    # botocore checks that StreamEnabled is there; a client that does not meets the service's
    # own request validator.
    unchecked = boto3.client(
        "dynamodb",
        endpoint_url=local_endpoint.endpoint_url,
        region_name="us-east-1",
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )
    specification = {"StreamViewType": "NEW_IMAGE"}
    assert refusal(
        unchecked.create_table, **table_request(name, StreamSpecification=specification)
    ) == (
        "1 validation error detected: Value null at 'streamSpecification.streamEnabled' "
        "failed to satisfy constraint: Member must not be null"
    )
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName=name)


def test_update_table_turns_a_stream_on_off_and_on_again_as_aws_does(
    clients: tuple[Any, Any],
) -> None:
    ddb, streams = clients
    name = f"toggled-{uuid.uuid4().hex[:8]}"
    ddb.create_table(**table_request(name))

    def update(**specification: Any) -> Any:
        return ddb.update_table(TableName=name, StreamSpecification=specification)

    assert refusal(update, StreamEnabled=True, StreamViewType="NEW_IMAGES").startswith(
        "1 validation error detected: Value 'NEW_IMAGES'"
    )
    assert refusal(update, StreamEnabled=True) == (
        INVALID + "If stream is being enabled then UpdateViewType is required"
    )
    assert refusal(update, StreamEnabled=False) == (
        f"Table has no stream to disable: TableName: {name}"
    )
    first = update(StreamEnabled=True, StreamViewType="KEYS_ONLY")["TableDescription"]
    assert first["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    assert refusal(update, StreamEnabled=True, StreamViewType="NEW_IMAGE") == (
        f"Table already has an enabled stream: TableName: {name}"
    )
    assert refusal(update, StreamEnabled=False, StreamViewType="KEYS_ONLY") == (
        INVALID + "If stream is being disabled, then UpdateViewType must not be specified"
    )
    update(StreamEnabled=False)
    assert "StreamSpecification" not in ddb.describe_table(TableName=name)["Table"]

    second = update(StreamEnabled=True, StreamViewType="NEW_IMAGE")["TableDescription"]
    assert second["LatestStreamArn"] != first["LatestStreamArn"]
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "n": {"N": "1"}})

    old = streams.describe_stream(StreamArn=first["LatestStreamArn"])["StreamDescription"]
    new = streams.describe_stream(StreamArn=second["LatestStreamArn"])["StreamDescription"]
    assert (old["StreamStatus"], new["StreamStatus"]) == ("DISABLED", "ENABLED")
    assert new["StreamViewType"] == "NEW_IMAGE"
    listed = {s["StreamArn"] for s in streams.list_streams(TableName=name)["Streams"]}
    assert listed == {first["LatestStreamArn"], second["LatestStreamArn"]}
    assert read_stream(streams, first["LatestStreamArn"]) == []
    ((_, record),) = read_stream(streams, second["LatestStreamArn"])
    assert record["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "n": {"N": "1"}}


IMAGES = {
    "KEYS_ONLY": set(),
    "NEW_IMAGE": {"NewImage"},
    "OLD_IMAGE": {"OldImage"},
    "NEW_AND_OLD_IMAGES": {"NewImage", "OldImage"},
}


@pytest.mark.parametrize("view_type", sorted(IMAGES))
def test_each_view_type_carries_the_images_it_names(
    clients: tuple[Any, Any], view_type: str
) -> None:
    ddb, streams = clients
    name = f"view-{uuid.uuid4().hex[:8]}"
    specification = {"StreamEnabled": True, "StreamViewType": view_type}
    ddb.create_table(**table_request(name, StreamSpecification=specification))
    arn = ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "n": {"N": "2"}})
    records = [record for _, record in read_stream(streams, arn)]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    modify = records[1]["dynamodb"]
    assert {"NewImage", "OldImage"} & set(modify) == IMAGES[view_type]
    assert modify["Keys"] == {"pk": {"S": "a"}} and modify["StreamViewType"] == view_type
