"""Creating bridge's own DynamoDB tables on first start, or finding them made beforehand.

A role that may not create tables (CreateTable refused) still starts against tables made by
Terraform or CloudFormation: a refused CreateTable is an error only when the table is not
there. Either way the table must be ACTIVE before the worker writes to it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from botocore.exceptions import ClientError

log = structlog.get_logger("bridge.leases")

_ACTIVE_TRIES = 120
_ACTIVE_EVERY = 0.5


async def ensure_table(client: Any, table: str, *, keys: list[tuple[str, str]], what: str) -> None:
    """``table`` with ``keys`` ((attribute, HASH | RANGE), string attributes), on demand."""
    try:
        await client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in keys],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name, _ in keys
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        log.info(f"{what} created", table=table)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "AccessDeniedException":
            if not await _exists(client, table):
                raise
        elif code != "ResourceInUseException":
            raise
    for _ in range(_ACTIVE_TRIES):
        described = await client.describe_table(TableName=table)
        if described["Table"]["TableStatus"] == "ACTIVE":
            return
        await asyncio.sleep(_ACTIVE_EVERY)
    raise RuntimeError(f"{what} {table} did not become ACTIVE")


async def _exists(client: Any, table: str) -> bool:
    """Whether DescribeTable finds the table; a refused DescribeTable counts as no."""
    try:
        await client.describe_table(TableName=table)
    except ClientError:
        return False
    return True
