"""The client over real HTTP against endpoints that fail on demand: signing, error mapping,
broken connections, timeouts, and DescribeStream pagination."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bridge.records import ChangeRecord
from bridge.streams import (
    AccessDeniedError,
    ExpiredIteratorError,
    ShardIterator,
    StaticCredentials,
    StreamNotFoundError,
    StreamsClient,
    TransientStreamError,
    TrimmedDataError,
)
from bridge.testing import free_port
from tests.streams.fake_endpoint import (
    Answer,
    FakeStreamsEndpoint,
    fake_endpoint,
    hanging_up_server,
    http_response,
    silent_server,
)

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
SHARD = "shardId-00000000000000000001-aaaa"
CREDENTIALS = StaticCredentials("AKIDEXAMPLE", "secret", "session-token")


def iterator(value: str = "it-1") -> ShardIterator:
    return ShardIterator(value, stream_arn=ARN, shard_id=SHARD)


def record(sequence: int) -> dict[str, object]:
    return {
        "eventID": str(sequence),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1.7e9,
            "Keys": {"pk": {"S": f"k{sequence}"}},
            "NewImage": {"pk": {"S": f"k{sequence}"}, "n": {"N": str(sequence)}},
            "SequenceNumber": str(sequence),
            "SizeBytes": 20,
            "StreamViewType": "NEW_IMAGE",
        },
    }


@pytest.fixture
async def endpoint() -> AsyncIterator[FakeStreamsEndpoint]:
    async with fake_endpoint() as server:
        yield server


@pytest.fixture
async def client(endpoint: FakeStreamsEndpoint) -> AsyncIterator[StreamsClient]:
    async with StreamsClient(
        "us-east-1", endpoint.url, credentials=CREDENTIALS, max_attempts=1
    ) as streams:
        yield streams


async def test_get_records_decodes_the_page_and_follows_the_shard(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    endpoint.answer(
        "GetRecords",
        Answer.json({"Records": [record(1), record(2)], "NextShardIterator": "it-2"}),
    )

    page = await client.get_records(iterator(), 2)

    assert [r.sequence_number for r in page.records] == ["1", "2"]
    assert [r.new_image for r in page.records] == [{"pk": "k1", "n": 1}, {"pk": "k2", "n": 2}]
    assert {r.shard_id for r in page.records} == {SHARD}
    assert page.next_iterator == "it-2"
    assert isinstance(page.next_iterator, ShardIterator)
    assert page.next_iterator.shard_id == SHARD
    assert orjson.loads(endpoint.requests[0].body) == {"ShardIterator": "it-1", "Limit": 2}
    assert client.get_records_calls == 1


async def test_a_closed_shard_read_to_its_end_has_no_next_iterator(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    endpoint.answer("GetRecords", Answer.json({"Records": []}))

    page = await client.get_records(iterator())

    assert page.records == []
    assert page.next_iterator is None
    assert page.shard_end


async def test_the_request_on_the_wire_carries_a_valid_sigv4_signature(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    endpoint.answer("GetRecords", Answer.json({"Records": [], "NextShardIterator": "n"}))

    await client.get_records(iterator())

    seen = endpoint.requests[0]
    authorization = seen.headers["Authorization"]
    assert "Credential=AKIDEXAMPLE/" in authorization
    assert "/us-east-1/dynamodb/aws4_request" in authorization
    assert seen.headers["X-Amz-Target"] == "DynamoDBStreams_20120810.GetRecords"
    assert seen.headers["Content-Type"] == "application/x-amz-json-1.0"
    assert seen.headers["X-Amz-Security-Token"] == "session-token"
    # Recompute the signature from what actually arrived: host, headers and body as received.
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    received = {name.lower(): value for name, value in seen.headers.items()}
    request = AWSRequest(
        method="POST",
        url=f"http://{seen.host}/",
        data=seen.body,
        headers={name: received[name] for name in signed if name != "host"},
    )
    request.context["timestamp"] = seen.headers["X-Amz-Date"]
    signer = SigV4Auth(
        Credentials("AKIDEXAMPLE", "secret", "session-token"), "dynamodb", "us-east-1"
    )
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    assert authorization.endswith(f"Signature={signer.signature(string_to_sign, request)}")


@pytest.mark.parametrize(
    ("answer", "kind", "code", "status"),
    [
        (Answer.error("ExpiredIteratorException", "Iterator expired"), ExpiredIteratorError,
         "ExpiredIteratorException", 400),
        (Answer.error("TrimmedDataAccessException", "trimmed"), TrimmedDataError,
         "TrimmedDataAccessException", 400),
        (Answer.error("LimitExceededException", "Rate exceeded"), TransientStreamError,
         "LimitExceededException", 400),
        (Answer.error("UnrecognizedClientException", "bad key"), AccessDeniedError,
         "UnrecognizedClientException", 400),
        (Answer.error("ResourceNotFoundException", "gone"), StreamNotFoundError,
         "ResourceNotFoundException", 400),
        (Answer(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"}),
         TransientStreamError, "HTTP503", 503),
        (Answer(400, b"", {"x-amzn-ErrorType": "ThrottlingException:http://internal/"}),
         TransientStreamError, "ThrottlingException", 400),
    ],
)  # fmt: skip
async def test_error_answers_become_stream_errors_naming_the_shard(
    endpoint: FakeStreamsEndpoint,
    client: StreamsClient,
    answer: Answer,
    kind: type[Exception],
    code: str,
    status: int,
) -> None:
    endpoint.answer("GetRecords", answer)

    with pytest.raises(kind) as caught:
        await client.get_records(iterator())

    error = caught.value
    assert type(error) is kind
    assert (error.code, error.status) == (code, status)  # type: ignore[attr-defined]
    assert SHARD in str(error) and ARN in str(error)


async def test_a_body_that_fails_its_crc32_is_a_transient_error(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    body = orjson.dumps({"Records": [record(1)], "NextShardIterator": "n"})
    endpoint.answer("GetRecords", Answer(200, body, {"x-amz-crc32": str(zlib.crc32(body) ^ 1)}))

    with pytest.raises(TransientStreamError) as caught:
        await client.get_records(iterator())
    assert caught.value.code == "CorruptResponse"


async def test_a_truncated_body_is_a_transient_error(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    endpoint.answer("GetRecords", Answer(200, b'{"Records": [{"eventN', {}))

    with pytest.raises(TransientStreamError, match="undecodable"):
        await client.get_records(iterator())


async def test_a_connection_closed_without_an_answer_is_transient() -> None:
    async with (
        hanging_up_server() as server,
        StreamsClient("us-east-1", server.url, credentials=CREDENTIALS) as client,
    ):
        with pytest.raises(TransientStreamError) as caught:
            await client.get_records(iterator())

    assert caught.value.code == "ConnectionError"
    assert caught.value.status is None
    assert SHARD in str(caught.value)
    assert server.connections == 2  # one immediate retry on a fresh connection, no more
    assert client.get_records_calls == 2


async def test_one_dropped_connection_is_retried_at_once() -> None:
    answer = http_response({"Records": [record(7)], "NextShardIterator": "n"})
    async with (
        hanging_up_server(answer_from=2, answer=answer) as server,
        StreamsClient("us-east-1", server.url, credentials=CREDENTIALS) as client,
    ):
        page = await client.get_records(iterator())

    assert [r.sequence_number for r in page.records] == ["7"]
    assert server.connections == 2


async def test_a_refused_port_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with StreamsClient("us-east-1", url, credentials=CREDENTIALS, max_attempts=1) as client:
        with pytest.raises(TransientStreamError) as caught:
            await client.get_records(iterator())
        assert caught.value.code == "ConnectionError"
        assert client.get_records_calls == 1  # refused is not a stale connection: no retry
        with pytest.raises(TransientStreamError):
            await client.describe_stream(ARN)


async def test_a_server_that_never_answers_times_out_as_transient() -> None:
    async with (
        silent_server() as url,
        StreamsClient("us-east-1", url, credentials=CREDENTIALS, read_timeout=0.2) as client,
    ):
        with pytest.raises(TransientStreamError) as caught:
            await client.get_records(iterator())
    assert caught.value.code == "Timeout"


async def test_describe_stream_reads_every_page_of_shards(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    ids = [f"shardId-0000000000000000000{n}-abcdef" for n in range(5)]

    def page(shards: list[str], last: str | None) -> Answer:
        description: dict[str, object] = {
            "StreamArn": ARN,
            "StreamLabel": "2026-01-01T00:00:00.000",
            "StreamStatus": "ENABLED",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "TableName": "orders",
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "Shards": [
                {
                    "ShardId": shard,
                    "ParentShardId": ids[0] if shard != ids[0] else None,
                    "SequenceNumberRange": {"StartingSequenceNumber": "100"},
                }
                for shard in shards
            ],
        }
        if last:
            description["LastEvaluatedShardId"] = last
        return Answer.json({"StreamDescription": description})

    endpoint.answer(
        "DescribeStream",
        page(ids[0:2], ids[1]),
        page(ids[2:4], ids[3]),
        page(ids[4:], None),
    )

    description = await client.describe_stream(ARN)

    assert [s.shard_id for s in description.shards] == ids
    assert description.shards[0].parent_shard_id is None
    assert description.shards[1].parent_shard_id == ids[0]
    assert description.key_names == ("pk", "sk")
    assert (description.table_name, description.view_type) == ("orders", "NEW_AND_OLD_IMAGES")
    sent = [orjson.loads(r.body) for r in endpoint.requests]
    assert [r.get("ExclusiveStartShardId") for r in sent] == [None, ids[1], ids[3]]
    assert client.describe_stream_calls == 3


async def test_describe_stream_errors_name_the_stream(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    endpoint.answer("DescribeStream", Answer.error("ResourceNotFoundException", "not found"))

    with pytest.raises(StreamNotFoundError, match="stream arn:aws:dynamodb"):
        await client.describe_stream(ARN)


async def test_get_shard_iterator_returns_an_iterator_that_knows_its_shard(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    endpoint.answer("GetShardIterator", Answer.json({"ShardIterator": "it-9"}))

    sequence = "100000000000000000042"
    shard_iterator = await client.get_shard_iterator(ARN, SHARD, "AFTER_SEQUENCE_NUMBER", sequence)

    assert shard_iterator == "it-9"
    assert isinstance(shard_iterator, ShardIterator)
    assert (shard_iterator.stream_arn, shard_iterator.shard_id) == (ARN, SHARD)
    assert orjson.loads(endpoint.requests[0].body) == {
        "StreamArn": ARN,
        "ShardId": SHARD,
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "SequenceNumber": sequence,
    }


async def test_a_bare_string_iterator_needs_its_shard_named(
    endpoint: FakeStreamsEndpoint, client: StreamsClient
) -> None:
    endpoint.answer("GetRecords", Answer.json({"Records": [record(3)], "NextShardIterator": "n"}))

    with pytest.raises(ValueError, match="shard_id"):
        await client.get_records("bare")
    page = await client.get_records(f"{ARN}|1|token", shard_id="shard-x")

    assert [r.shard_id for r in page.records] == ["shard-x"]
    assert isinstance(page.records[0], ChangeRecord)


async def test_a_closed_client_refuses_calls_and_closes_twice_quietly(
    endpoint: FakeStreamsEndpoint,
) -> None:
    client = StreamsClient("us-east-1", endpoint.url, credentials=CREDENTIALS)
    with pytest.raises(RuntimeError, match="not open"):
        await client.get_records(iterator())
    await client.open()
    await client.aclose()
    await client.aclose()
    with pytest.raises(RuntimeError, match="not open"):
        await client.describe_stream(ARN)
