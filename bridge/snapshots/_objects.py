"""The one seam to the object store: list, put, get, delete; S3 or in memory.

Synchronous (boto3's transfer manager does multipart uploads and parallel ranged downloads
on its own threads); callers run it off the event loop.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bridge.core.backoff import Backoff

# Answers that say nothing about the bucket, only that the store could not answer now.
_PASSING_CODES = frozenset(
    {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown", "Throttling"}
)


class ObjectStoreError(Exception):
    """The store refused or failed a request; the message names the bucket and key.

    ``transient``: no answer, a 5xx or throttling, which trying again later may cure."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class BucketMissingError(ObjectStoreError):
    """The bucket does not exist in this store (or this account may not see it)."""


class ObjectStore(Protocol):
    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix``."""
        ...

    def put_file(
        self, key: str, path: Path, progress: Callable[[int], None] | None = None
    ) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_file(
        self, key: str, path: Path, progress: Callable[[int], None] | None = None
    ) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class S3ObjectStore:
    """``ObjectStore`` over S3 or any S3-compatible store (``endpoint_url``)."""

    def __init__(self, bucket: str, *, region: str, endpoint_url: str | None = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        kwargs: dict[str, Any] = {
            "region_name": region,
            "config": Config(retries={"max_attempts": 5, "mode": "standard"}),
        }
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        self._s3 = boto3.session.Session().client("s3", **kwargs)
        # One try per check, short timeouts: check_bucket paces its own retries.
        self._probe_options = {
            **kwargs,
            "config": Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
        }
        self._probe: Any = None
        self._transfer = TransferConfig(multipart_chunksize=16 * 1024 * 1024, max_concurrency=4)

    def _fail(self, action: str, key: str, exc: Exception) -> ObjectStoreError:
        return ObjectStoreError(f"s3://{self.bucket}/{key}: {action} failed: {exc}")

    def check_bucket(self, *, retry_for: float = 0.0, stop: Callable[[], bool] = bool) -> None:
        """Whether the bucket is there, asked once at start so that a wrong name fails the
        start rather than every snapshot later. A passing failure (no answer, 5xx,
        throttling: a pod whose network is not up yet) is asked again with backoff for
        ``retry_for`` seconds, or until ``stop()``; then the last error is raised."""
        backoff, rng = Backoff(base=0.25, cap=5.0), random.Random()
        give_up = time.monotonic() + retry_for
        attempt = 0
        while True:
            try:
                self._head_bucket()
                return
            except ObjectStoreError as exc:
                delay = backoff.delay(attempt, rng)
                attempt += 1
                if not exc.transient or stop() or time.monotonic() + delay > give_up:
                    raise
            time.sleep(delay)

    def _head_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as NoAnswerError

        if self._probe is None:
            import boto3

            self._probe = boto3.session.Session().client("s3", **self._probe_options)
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            error = exc.response.get("Error") or {}
            code = str(error.get("Code") or "")
            status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise BucketMissingError(f"bucket {self.bucket!r} does not exist") from None
            raise ObjectStoreError(
                f"bucket {self.bucket!r}: {code or status} {error.get('Message') or ''}".rstrip(),
                transient=code in _PASSING_CODES or status in (429, 500, 502, 503, 504),
            ) from None
        except (NoAnswerError, HTTPClientError) as exc:
            raise ObjectStoreError(f"bucket {self.bucket!r}: {exc}", transient=True) from None
        except BotoCoreError as exc:  # no credentials, a malformed endpoint: asking again won't do
            raise ObjectStoreError(f"bucket {self.bucket!r}: {exc}") from None

    def list(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys += [o["Key"] for o in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("list", prefix, exc) from None
        return keys

    def put_file(self, key: str, path: Path, progress: Callable[[int], None] | None = None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.upload_file(
                str(path), self.bucket, key, Callback=progress, Config=self._transfer
            )
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._fail("upload", key, exc) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="application/json"
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("upload", key, exc) from None

    def get_file(self, key: str, path: Path, progress: Callable[[int], None] | None = None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.download_file(
                self.bucket, key, str(path), Callback=progress, Config=self._transfer
            )
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._fail("download", key, exc) from None

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            return bytes(body.read())
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("download", key, exc) from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", key, exc) from None


class MemoryObjectStore:
    """``ObjectStore`` in memory, for tests and tools."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self.objects if k.startswith(prefix))

    def put_file(self, key: str, path: Path, progress: Callable[[int], None] | None = None) -> None:
        data = path.read_bytes()
        self.put_bytes(key, data)
        if progress is not None:
            progress(len(data))

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._lock:
            self.objects[key] = data

    def get_file(self, key: str, path: Path, progress: Callable[[int], None] | None = None) -> None:
        data = self.get_bytes(key)
        path.write_bytes(data)
        if progress is not None:
            progress(len(data))

    def get_bytes(self, key: str) -> bytes:
        with self._lock:
            if key not in self.objects:
                raise ObjectStoreError(f"memory://{key}: no such key")
            return self.objects[key]

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)
