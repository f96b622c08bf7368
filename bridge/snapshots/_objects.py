"""The one seam to the object store: list, put, get, delete; S3 or in memory.

Synchronous (boto3's transfer manager does multipart uploads and parallel ranged downloads
on its own threads); callers run it off the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class ObjectStoreError(Exception):
    """The store refused or failed a request; the message names the bucket and key."""


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
        self._transfer = TransferConfig(multipart_chunksize=16 * 1024 * 1024, max_concurrency=4)

    def _fail(self, action: str, key: str, exc: Exception) -> ObjectStoreError:
        return ObjectStoreError(f"s3://{self.bucket}/{key}: {action} failed: {exc}")

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
