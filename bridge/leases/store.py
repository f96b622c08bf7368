"""The lease table in DynamoDB, with KCL's attribute names so KCL applications can migrate.

Every write that depends on ownership is conditional on owner and counter: the counter is the
fencing token. A worker whose lease moved on gets ``LeaseLostError`` and writes nothing more.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any, Protocol

import structlog
from botocore.exceptions import ClientError

from bridge.core.leasing import Lease
from bridge.core.positions import TRIM_HORIZON
from bridge.errors import LeaseLostError
from bridge.leases.rows import (
    CHECKPOINT,
    CHILDREN,
    COUNTER,
    HANDOFF_TO,
    KCL_ONLY,
    KEY,
    OWNER,
    OWNER_SWITCHES,
    PARENTS,
    PAUSED_FOR,
    SNAPSHOT_WANTED,
    SUB_SEQUENCE,
    is_lease,
    lease_of,
    owner_value,
    set_lag,
)
from bridge.leases.tables import ensure_table

log = structlog.get_logger("bridge.leases")


class LeaseConflictError(Exception):
    """Another worker changed the lease first (a take or create lost the race)."""


class LeaseStore(Protocol):
    """What workers need from a lease table; ``bridge.testing`` has an in-memory one."""

    async def ensure_table(self) -> None: ...
    async def list_leases(self) -> list[Lease]: ...
    async def create_lease(
        self, key: str, parents: frozenset[str], checkpoint: str = ...
    ) -> bool: ...
    async def add_children(self, key: str, children: frozenset[str]) -> None: ...
    async def add_parents(self, key: str, parents: frozenset[str]) -> None: ...
    async def want_snapshot(self, lease: Lease, at_ms: int) -> Lease: ...
    async def pause(self, lease: Lease, cutoff_ms: int) -> Lease: ...
    async def take(self, lease: Lease, owner: str) -> Lease: ...
    async def renew(self, lease: Lease) -> Lease: ...
    async def checkpoint(self, lease: Lease, checkpoint: str) -> Lease: ...
    async def release(self, lease: Lease) -> None: ...
    async def get_leases(self, keys: list[str]) -> list[Lease]: ...
    async def request_handoff(self, lease: Lease, to: str) -> Lease: ...
    async def withdraw_request(self, key: str, asker: str) -> None: ...
    async def hand_over(self, lease: Lease, to: str) -> Lease: ...
    async def delete(self, key: str) -> None: ...
    async def retire(self, lease: Lease) -> None: ...


class DynamoLeaseStore:
    """``LeaseStore`` over an aiobotocore DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        self.reads = 0
        self.writes = 0

    async def ensure_table(self) -> None:
        await ensure_table(self.client, self.table, keys=[(KEY, "HASH")], what="lease table")

    async def list_leases(self) -> list[Lease]:
        return [lease_of(item) for item in await self.rows() if is_lease(item)]

    async def rows(self) -> list[dict[str, Any]]:
        """Every row of the table as DynamoDB JSON, leases or not (a consistent Scan)."""
        rows: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = await self.client.scan(**kwargs)
            self.reads += 1
            rows.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return rows
            kwargs["ExclusiveStartKey"] = start

    async def create_lease(
        self, key: str, parents: frozenset[str], checkpoint: str = TRIM_HORIZON
    ) -> bool:
        """A new lease, with the checkpoint a shard without one starts from (TRIM_HORIZON or
        LATEST), as KCL writes it."""
        item: dict[str, Any] = {
            KEY: {"S": key},
            COUNTER: {"N": "0"},
            CHECKPOINT: {"S": checkpoint},
            OWNER_SWITCHES: {"N": "0"},
            SUB_SEQUENCE: {"N": "0"},
        }
        if parents:
            item[PARENTS] = {"SS": sorted(parents)}
        try:
            await self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": KEY},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        finally:
            self.writes += 1
        return True

    async def add_children(self, key: str, children: frozenset[str]) -> None:
        if not children:
            return
        await self._update(
            key,
            "ADD #c :c",
            {"#c": CHILDREN, "#k": KEY},
            {":c": {"SS": sorted(children)}},
            "attribute_exists(#k)",
            conflict=LeaseConflictError,
        )

    async def add_parents(self, key: str, parents: frozenset[str]) -> None:
        """More shards (a fresh snapshot's segments) this lease must wait for; not
        conditional on the owner, whose writes never touch the parents."""
        if not parents:
            return
        await self._update(
            key,
            "ADD #p :p",
            {"#p": PARENTS, "#k": KEY},
            {":p": {"SS": sorted(parents)}},
            "attribute_exists(#k)",
            conflict=LeaseConflictError,
        )

    async def want_snapshot(self, lease: Lease, at_ms: int) -> Lease:
        """Ask the leader for a fresh snapshot (``on_trimmed: rebootstrap``), as the owner."""
        await self._update(
            lease.key,
            "SET #w = :w",
            {"#w": SNAPSHOT_WANTED, "#o": OWNER, "#n": COUNTER},
            {":w": {"N": str(at_ms)}, ":n": {"N": str(lease.counter)}, ":me": owner_value(lease)},
            "#n = :n AND #o = :me",
            conflict=LeaseLostError,
        )
        return replace(lease, snapshot_wanted_ms=at_ms)

    async def pause(self, lease: Lease, cutoff_ms: int) -> Lease:
        """Say, as the owner, that nothing more is read of the shard until the snapshot of
        ``cutoff_ms`` is through (its scan waits for this)."""
        await self._update(
            lease.key,
            "SET #p = :p",
            {"#p": PAUSED_FOR, "#o": OWNER, "#n": COUNTER},
            {
                ":p": {"N": str(cutoff_ms)},
                ":n": {"N": str(lease.counter)},
                ":me": owner_value(lease),
            },
            "#n = :n AND #o = :me",
            conflict=LeaseLostError,
        )
        return replace(lease, paused_for_ms=cutoff_ms)

    async def take(self, lease: Lease, owner: str) -> Lease:
        names = {"#o": OWNER, "#n": COUNTER, "#s": OWNER_SWITCHES, "#h": HANDOFF_TO}
        values: dict[str, Any] = {":n": {"N": str(lease.counter)}, ":one": {"N": "1"}}
        values[":me"] = {"S": owner}
        switch = 0 if lease.owner == owner else 1
        values[":sw"] = {"N": str(switch)}
        if lease.owner is None:
            condition = "#n = :n AND attribute_not_exists(#o)"
        else:
            condition = "#n = :n AND #o = :old"
            values[":old"] = {"S": lease.owner}
        # The row as the take left it, not as the scan saw it: the previous owner may have
        # checkpointed in between (a checkpoint does not move the counter), and the new owner
        # must start after that checkpoint, not replay the batch before it.
        names.update({f"#kcl{n}": name for n, name in enumerate(KCL_ONLY)})
        kcl_only = ", ".join(f"#kcl{n}" for n in range(len(KCL_ONLY)))
        taken = await self._update(
            lease.key,
            f"SET #o = :me, #n = #n + :one ADD #s :sw REMOVE #h, {kcl_only}",
            names,
            values,
            condition,
            conflict=LeaseConflictError,
            return_values="ALL_NEW",
        )
        return lease_of(taken)

    async def renew(self, lease: Lease) -> Lease:
        """Move the counter on; the lease's lag reading, if any, rides along in the same write.
        The row comes back with the write (no read billed): a handoff asked of the owner is
        heard within a renew interval."""
        names = {"#o": OWNER, "#n": COUNTER}
        values = {":one": {"N": "1"}, ":n": {"N": str(lease.counter)}, ":me": owner_value(lease)}
        row = await self._update(
            lease.key,
            "SET #n = #n + :one" + set_lag(lease, names, values),
            names,
            values,
            "#n = :n AND #o = :me",
            conflict=LeaseLostError,
            return_values="ALL_NEW",
        )
        asked = row.get(HANDOFF_TO, {}).get("S")
        return replace(lease, counter=lease.counter + 1, handoff_to=asked)

    async def withdraw_request(self, key: str, asker: str) -> None:
        """Take back our request for a lease (we are stopping), unless another replaced it."""
        with contextlib.suppress(LeaseConflictError):
            await self._update(
                key,
                "REMOVE #h",
                {"#h": HANDOFF_TO},
                {":me": {"S": asker}},
                "#h = :me",
                conflict=LeaseConflictError,
            )

    async def get_leases(self, keys: list[str]) -> list[Lease]:
        """The rows of ``keys`` (those that exist), read consistently, up to 100 a request."""
        found: list[Lease] = []
        for start in range(0, len(keys), 100):
            wanted: dict[str, Any] = {
                self.table: {
                    "Keys": [{KEY: {"S": key}} for key in keys[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while wanted:
                answer = await self.client.batch_get_item(RequestItems=wanted)
                self.reads += 1
                found += [lease_of(item) for item in answer["Responses"].get(self.table, [])]
                wanted = answer.get("UnprocessedKeys") or {}
        return found

    async def request_handoff(self, lease: Lease, to: str) -> Lease:
        """Ask the owner to hand the lease to ``to`` at its next batch boundary; the counter
        does not move, so the owner's renewals and checkpoints go on. The last one to ask is
        the one asked for (a request left by a worker that died is simply overwritten).
        ``LeaseConflictError`` when the owner changed."""
        if lease.owner is None:
            raise LeaseConflictError(f"lease {lease.key} has no owner to ask")
        await self._update(
            lease.key,
            "SET #h = :to",
            {"#o": OWNER, "#h": HANDOFF_TO},
            {":old": {"S": lease.owner}, ":to": {"S": to}},
            "#o = :old",
            conflict=LeaseConflictError,
        )
        return replace(lease, handoff_to=to)

    async def hand_over(self, lease: Lease, to: str) -> Lease:
        """Give the lease, checkpointed, to ``to``: a take done for it (owner and counter move
        in one conditional write), so it never lies free for a third worker to take. Only while
        ``to`` is still the one asking: ``LeaseConflictError`` when the lease is no longer
        ours or the request changed (withdrawn, or another asked since); read the row to
        tell which."""
        names = {"#o": OWNER, "#n": COUNTER, "#s": OWNER_SWITCHES, "#h": HANDOFF_TO}
        values = {
            ":one": {"N": "1"},
            ":n": {"N": str(lease.counter)},
            ":me": owner_value(lease),
            ":to": {"S": to},
        }
        await self._update(
            lease.key,
            "SET #o = :to, #n = #n + :one ADD #s :one REMOVE #h",
            names,
            values,
            "#n = :n AND #o = :me AND #h = :to",
            conflict=LeaseConflictError,
        )
        return replace(
            lease,
            owner=to,
            counter=lease.counter + 1,
            owner_switches=lease.owner_switches + 1,
            handoff_to=None,
        )

    async def checkpoint(self, lease: Lease, checkpoint: str) -> Lease:
        names = {
            "#o": OWNER,
            "#n": COUNTER,
            "#c": CHECKPOINT,
            "#s": OWNER_SWITCHES,
            "#sub": SUB_SEQUENCE,
        }
        values = {
            ":c": {"S": checkpoint},
            ":zero": {"N": "0"},
            ":n": {"N": str(lease.counter)},
            ":me": owner_value(lease),
        }
        await self._update(
            lease.key,
            "SET #c = :c, #s = :zero, #sub = :zero" + set_lag(lease, names, values),
            names,
            values,
            "#n = :n AND #o = :me",
            conflict=LeaseLostError,
        )
        return replace(lease, checkpoint=checkpoint, owner_switches=0)

    async def release(self, lease: Lease) -> None:
        await self._update(
            lease.key,
            "REMOVE #o SET #n = #n + :one",
            {"#o": OWNER, "#n": COUNTER},
            {":one": {"N": "1"}, ":n": {"N": str(lease.counter)}, ":me": owner_value(lease)},
            "#n = :n AND #o = :me",
            conflict=LeaseLostError,
        )

    async def delete(self, key: str) -> None:
        """Delete a finished lease; only one whose checkpoint is SHARD_END can go."""
        try:
            await self.client.delete_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                ConditionExpression="#c = :end",
                ExpressionAttributeNames={"#c": CHECKPOINT},
                ExpressionAttributeValues={":end": {"S": "SHARD_END"}},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        finally:
            self.writes += 1

    async def retire(self, lease: Lease) -> None:
        """Delete the lease of a stream that no longer exists, finished or not, unless it
        moved since it was read (a later sync looks again)."""
        try:
            await self.client.delete_item(
                TableName=self.table,
                Key={KEY: {"S": lease.key}},
                ConditionExpression="#n = :n",
                ExpressionAttributeNames={"#n": COUNTER},
                ExpressionAttributeValues={":n": {"N": str(lease.counter)}},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        finally:
            self.writes += 1

    async def _update(
        self,
        key: str,
        expression: str,
        names: dict[str, str],
        values: dict[str, Any],
        condition: str,
        *,
        conflict: type[Exception],
        return_values: str = "NONE",
    ) -> dict[str, Any]:
        """The conditional update; returns the attributes asked for by ``return_values``."""
        try:
            answer = await self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues=return_values,
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise conflict(f"lease {key} changed under us ({condition})") from None
            raise
        finally:
            self.writes += 1
        attributes: dict[str, Any] = answer.get("Attributes", {})
        return attributes


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
