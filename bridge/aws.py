"""One place that turns ``source`` settings into keyword arguments for AWS clients."""

from __future__ import annotations

from typing import Any

from botocore.config import Config as BotoConfig

from bridge.config import SourceConfig


def client_kwargs(
    source: SourceConfig, *, timeout: float = 10.0, attempts: int = 3
) -> dict[str, Any]:
    """Region, endpoint and credentials for aioboto3/boto3 clients.

    Retries are ours to decide (backoff with jitter, lease deadlines), so botocore's own retry
    loop is kept short: a renewal must not hide for a minute inside the SDK. ``attempts`` counts
    the first call too (botocore's ``total_max_attempts``; its ``max_attempts`` counts retries
    only); 1 turns the SDK's retries off, for the lease table, whose calls bridge retries
    itself: botocore would sleep up to a second before its first retry, and two before its
    second, while the call holds the lease's lock.
    """
    kwargs: dict[str, Any] = {
        "region_name": source.region,
        "config": BotoConfig(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": attempts, "mode": "standard"},
        ),
    }
    if source.endpoint_url:
        kwargs["endpoint_url"] = source.endpoint_url
    if source.aws_access_key_id and source.aws_secret_access_key:
        kwargs["aws_access_key_id"] = source.aws_access_key_id.get_secret_value()
        kwargs["aws_secret_access_key"] = source.aws_secret_access_key.get_secret_value()
    return kwargs
