"""``StreamsClient``: a worker's connection to DynamoDB Streams.

DescribeTable, DescribeStream and GetShardIterator are rare and go through aiobotocore, which
brings credential resolution, endpoint rules and retries for free. GetRecords is the hot path
and goes through ``RecordsFetcher`` (signed by hand, decoded by orjson). Both report failures
as ``bridge.streams.errors`` exceptions built by the same mapping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from bridge.config import SourceConfig
from bridge.streams.errors import (
    AccessDeniedError,
    InvalidRequestError,
    StreamNotEnabledError,
    StreamNotFoundError,
    from_exception,
)
from bridge.streams.fastpath import CredentialSource, RecordsFetcher
from bridge.streams.model import (
    IteratorKind,
    RecordsPage,
    Shard,
    ShardIterator,
    StreamDescription,
    parse_stream_description,
)

T = TypeVar("T")

# Everything an aiobotocore call raises for a failed request; bugs of ours stay as they are.
_CALL_ERRORS = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True)
class StaticCredentials:
    """Fixed credentials; without them the default AWS chain applies (env, profile, IRSA, IMDS)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    """Only for temporary (STS) credentials."""


@dataclass(frozen=True)
class _Connections:
    """What exists between open() and aclose(). The aiobotocore clients are untyped."""

    streams: Any
    dynamodb: Any
    fetcher: RecordsFetcher


class StreamsClient:
    """Reads DynamoDB Streams for one worker; implements ``StreamReader``.

    Use as ``async with StreamsClient(region, endpoint_url) as client:`` (or ``await open()`` and
    ``await aclose()``). The counters count API requests: ``get_records_calls`` includes the
    fast path's own retries; the others count requests made, before aiobotocore's retries.
    """

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        *,
        credentials: StaticCredentials | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 32,
        max_attempts: int = 3,
        http: aiohttp.ClientSession | None = None,
        session: AioSession | None = None,
    ) -> None:
        """``max_attempts`` (the first call included) applies to aiobotocore's calls only; the
        fast path does not retry (beyond one stale keep-alive connection) because the shard
        consumer backs off itself.
        ``http`` shares an aiohttp session with other users; the client then leaves it open.
        ``session`` shares an aiobotocore session (and its credential cache); ``credentials``,
        if given, are set on it."""
        self.region = region
        self.endpoint_url = endpoint_url
        self._static = credentials
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._max_attempts = max_attempts
        self._given_http = http
        self._session = session or get_session()
        self._stack: contextlib.AsyncExitStack | None = None
        self._open_state: _Connections | None = None
        self._fetches_before = 0  # get_records calls of earlier opens, so counters keep going
        self.describe_stream_calls = 0
        self.describe_table_calls = 0
        self.get_shard_iterator_calls = 0

    @classmethod
    def for_source(cls, source: SourceConfig) -> StreamsClient:
        """The client for a configuration's ``source``: its region, endpoint and credentials."""
        credentials = None
        if source.aws_access_key_id and source.aws_secret_access_key:
            credentials = StaticCredentials(
                source.aws_access_key_id.get_secret_value(),
                source.aws_secret_access_key.get_secret_value(),
            )
        return cls(source.region, source.endpoint_url, credentials=credentials)

    @property
    def get_records_calls(self) -> int:
        state = self._open_state
        return self._fetches_before + (state.fetcher.calls if state is not None else 0)

    async def open(self) -> Self:
        """Create the aiobotocore clients and the HTTP pool, and resolve credentials once."""
        if self._stack is not None:
            return self
        stack = contextlib.AsyncExitStack()
        try:
            self._open_state = await self._open(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def _open(self, stack: contextlib.AsyncExitStack) -> _Connections:
        if self._static is not None:
            self._session.set_credentials(
                self._static.access_key_id,
                self._static.secret_access_key,
                self._static.session_token,
            )
        credentials = await self._call(self._session.get_credentials(), "credentials")
        if credentials is None:
            raise AccessDeniedError(
                "no AWS credentials found (environment, profile, web identity or instance role)",
                code="NoCredentials",
                context="credentials",
            )
        config = AioConfig(
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            max_pool_connections=self._max_connections,
            # botocore's ``max_attempts`` counts retries; ``total_max_attempts`` every call.
            retries={"mode": "standard", "total_max_attempts": self._max_attempts},
        )
        options: dict[str, Any] = {
            "region_name": self.region,
            "endpoint_url": self.endpoint_url,
            "config": config,
        }
        streams = await stack.enter_async_context(
            self._session.create_client("dynamodbstreams", **options)
        )
        dynamodb = await stack.enter_async_context(
            self._session.create_client("dynamodb", **options)
        )
        http = self._given_http
        if http is None:
            http = await stack.enter_async_context(self._new_http_session())
        fetcher = RecordsFetcher(
            endpoint_url=streams.meta.endpoint_url,
            region=self.region,
            credentials=_as_credential_source(credentials),
            http=http,
        )
        return _Connections(streams=streams, dynamodb=dynamodb, fetcher=fetcher)

    def _new_http_session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(
            total=self._connect_timeout + self._read_timeout,
            connect=self._connect_timeout,
            sock_read=self._read_timeout,
        )
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=60)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)

    async def aclose(self) -> None:
        """Close the clients and the pool; safe to call twice."""
        stack, self._stack = self._stack, None
        if self._open_state is not None:
            self._fetches_before += self._open_state.fetcher.calls
            self._open_state = None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- StreamReader ---------------------------------------------------------------------

    async def latest_stream_arn(self, table: str) -> str:
        context = f"table {table!r}"
        self.describe_table_calls += 1
        try:
            answer = await self._call(
                self._opened().dynamodb.describe_table(TableName=table), context
            )
        except StreamNotFoundError as exc:
            raise StreamNotFoundError(
                f"the table does not exist ({exc.message})",
                code=exc.code,
                status=exc.status,
                context=context,
            ) from exc
        description = answer["Table"]
        enabled = (description.get("StreamSpecification") or {}).get("StreamEnabled", False)
        arn = description.get("LatestStreamArn")
        if not enabled or not arn:
            raise StreamNotEnabledError(
                "the table has no stream enabled; enable one (StreamViewType "
                "NEW_AND_OLD_IMAGES, NEW_IMAGE or KEYS_ONLY) and start again",
                code="StreamNotEnabled",
                context=context,
            )
        return str(arn)

    async def list_streams(self, table: str) -> list[str]:
        """The table's stream ARNs, newest first (one page): a cheap call that shows the Streams
        endpoint answers and takes the credentials, which any worker may make at start, where
        DescribeStream is the leader's alone."""
        context = f"table {table!r}"
        answer = await self._call(
            self._opened().streams.list_streams(TableName=table, Limit=100), context
        )
        return [str(stream["StreamArn"]) for stream in answer.get("Streams", [])]

    async def describe_stream(self, stream_arn: str) -> StreamDescription:
        context = f"stream {stream_arn}"
        streams = self._opened().streams
        pages: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": stream_arn, "Limit": 100}
        while True:
            self.describe_stream_calls += 1
            answer = await self._call(streams.describe_stream(**request), context)
            page = answer["StreamDescription"]
            pages.append(page)
            last = page.get("LastEvaluatedShardId")
            if not last:
                return parse_stream_description(pages)
            request["ExclusiveStartShardId"] = last

    async def child_shards(self, stream_arn: str, shard_id: str) -> list[Shard]:
        """The children of one shard, with DescribeStream's CHILD_SHARDS filter: one call
        (and one page), however large the stream, which is why any worker may make it."""
        context = f"stream {stream_arn} shard {shard_id}"
        self.describe_stream_calls += 1
        answer = await self._call(
            self._opened().streams.describe_stream(
                StreamArn=stream_arn,
                ShardFilter={"Type": "CHILD_SHARDS", "ShardId": shard_id},
            ),
            context,
        )
        return list(parse_stream_description([answer["StreamDescription"]]).shards)

    async def get_shard_iterator(
        self,
        stream_arn: str,
        shard_id: str,
        kind: IteratorKind,
        sequence_number: str | None = None,
    ) -> ShardIterator:
        context = f"stream {stream_arn} shard {shard_id}"
        request: dict[str, Any] = {
            "StreamArn": stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": kind,
        }
        if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            if sequence_number is None:
                raise InvalidRequestError(
                    f"{kind} needs a sequence number", code="MissingParameter", context=context
                )
            request["SequenceNumber"] = sequence_number
        streams = self._opened().streams
        self.get_shard_iterator_calls += 1
        answer = await self._call(streams.get_shard_iterator(**request), context)
        return ShardIterator(answer["ShardIterator"], stream_arn=stream_arn, shard_id=shard_id)

    async def get_records(
        self, iterator: str, limit: int = 1000, *, shard_id: str | None = None
    ) -> RecordsPage:
        """Read through the fast path. ``iterator`` should be one this client returned (it
        carries its shard id); for a bare string, say which shard it reads with ``shard_id``."""
        return await self._opened().fetcher.get_records(_shard_iterator(iterator, shard_id), limit)

    # --- helpers ----------------------------------------------------------------------------

    def _opened(self) -> _Connections:
        if self._open_state is None:
            raise RuntimeError("StreamsClient is not open: use `async with StreamsClient(...)`")
        return self._open_state

    @staticmethod
    async def _call(call: Awaitable[T], context: str) -> T:
        try:
            return await call
        except _CALL_ERRORS as exc:
            raise from_exception(exc, context=context) from exc


def _shard_iterator(iterator: str, shard_id: str | None) -> ShardIterator:
    if isinstance(iterator, ShardIterator) and shard_id in (None, iterator.shard_id):
        return iterator
    if shard_id is None:
        raise ValueError(
            "get_records needs to know the shard: pass an iterator from get_shard_iterator or "
            "a previous page, or shard_id="
        )
    # AWS iterators start with the stream ARN; it only serves to name the stream in errors.
    stream_arn = iterator.split("|", 1)[0] if iterator.startswith("arn:") else "(unknown)"
    return ShardIterator(iterator, stream_arn=stream_arn, shard_id=shard_id)


def _as_credential_source(credentials: Any) -> CredentialSource:
    # aiobotocore's credential objects (static or refreshable) already have the async method.
    if not hasattr(credentials, "get_frozen_credentials"):
        raise TypeError(f"unexpected credentials object {type(credentials).__name__}")
    source: CredentialSource = credentials
    return source
