"""GetRecords without botocore's machinery: the one call every worker makes many times a second.

botocore walks its service model for every value of every record to turn the response into
Python, which on one core tops out near 6,000 records/s. Here the request is built by hand,
signed with botocore's own SigV4 signer (so credentials, refresh and signing stay exactly
botocore's), sent over a pooled aiohttp session and decoded by orjson into lazy
``ChangeRecord``s. Errors go through ``bridge.streams.errors`` like those of the botocore path.
"""

from __future__ import annotations

import errno
import zlib
from typing import Protocol

import aiohttp
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from bridge import __version__
from bridge.streams.errors import (
    FatalStreamError,
    TransientStreamError,
    from_exception,
    from_response,
)
from bridge.streams.model import RecordsPage, ShardIterator, parse_get_records

TARGET = "DynamoDBStreams_20120810.GetRecords"
CONTENT_TYPE = "application/x-amz-json-1.0"
SIGNING_NAME = "dynamodb"  # the Streams API signs as "dynamodb", not "dynamodbstreams"


class CredentialSource(Protocol):
    """What aiobotocore's credentials offer: a current snapshot, refreshed when it is due."""

    async def get_frozen_credentials(self) -> ReadOnlyCredentials: ...


class RecordsFetcher:
    """Sends signed GetRecords requests and decodes the answers; one per worker.

    ``calls`` counts requests sent, retries included: each one is billed.
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        credentials: CredentialSource,
        http: aiohttp.ClientSession,
        stale_connection_retries: int = 1,
    ) -> None:
        self._url = endpoint_url if endpoint_url.count("/") > 2 else endpoint_url + "/"
        self._region = region
        self._credentials = credentials
        self._http = http
        self._stale_connection_retries = stale_connection_retries
        self.calls = 0

    async def get_records(self, iterator: ShardIterator, limit: int = 1000) -> RecordsPage:
        """One GetRecords request; the iterator says which shard the records belong to."""
        body = orjson.dumps({"ShardIterator": str(iterator), "Limit": limit})
        attempt = 0
        while True:
            try:
                return await self._send(body, iterator)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                # A pooled keep-alive connection the server already closed fails at once and
                # says nothing about the service: one immediate retry on a fresh connection.
                if not _stale_connection(exc) or attempt >= self._stale_connection_retries:
                    raise from_exception(exc, context=iterator.describe()) from exc
                attempt += 1

    async def _send(self, body: bytes, iterator: ShardIterator) -> RecordsPage:
        headers = await self._signed_headers(body)
        self.calls += 1
        async with self._http.post(self._url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 200:
                raise from_response(
                    response.status,
                    payload,
                    error_type_header=response.headers.get("x-amzn-ErrorType"),
                    context=iterator.describe(),
                )
            _check_crc32(payload, response.headers.get("x-amz-crc32"), iterator)
        return _decode(payload, iterator)

    async def _signed_headers(self, body: bytes) -> dict[str, str]:
        try:
            credentials = await self._credentials.get_frozen_credentials()
        except Exception as exc:  # a failed refresh (STS, IMDS) surfaces as anything
            raise from_exception(exc, context="credentials") from exc
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET},
        )
        SigV4Auth(credentials, SIGNING_NAME, self._region).add_auth(request)
        headers = dict(request.headers.items())
        # Unsigned on purpose: the signature does not need them and aiohttp would add others.
        headers["Accept-Encoding"] = "identity"  # as botocore: the CRC32 covers the plain body
        headers["User-Agent"] = f"bridge/{__version__} aiohttp/{aiohttp.__version__}"
        return headers


def _stale_connection(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientConnectionResetError):
        return True
    # Reset or broken pipe on an established connection; failing to connect is not "stale".
    return (
        isinstance(exc, aiohttp.ClientOSError)
        and not isinstance(exc, aiohttp.ClientConnectorError)
        and exc.errno in (errno.ECONNRESET, errno.EPIPE)
    )


def _check_crc32(payload: bytes, expected: str | None, iterator: ShardIterator) -> None:
    if expected is None:
        return
    if zlib.crc32(payload) != int(expected):
        raise TransientStreamError(
            f"response CRC32 mismatch (expected {expected}, body of {len(payload)} bytes)",
            code="CorruptResponse",
            status=200,
            context=iterator.describe(),
        )


def _decode(payload: bytes, iterator: ShardIterator) -> RecordsPage:
    try:
        return parse_get_records(payload, iterator)
    except orjson.JSONDecodeError as exc:
        # Truncated or garbled in transit: the same request will very likely succeed.
        raise TransientStreamError(
            f"undecodable response body: {exc}",
            code="CorruptResponse",
            status=200,
            context=iterator.describe(),
        ) from exc
    except (KeyError, TypeError, AttributeError) as exc:
        # Valid JSON of the wrong shape: not the API we speak, retrying will not change it.
        raise FatalStreamError(
            f"GetRecords response of an unexpected shape ({type(exc).__name__}: {exc})",
            code="MalformedResponse",
            status=200,
            context=iterator.describe(),
        ) from exc
