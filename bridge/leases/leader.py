"""Leader election: one worker of an app holds a DynamoDB lock and alone syncs shards.

Only the leader calls DescribeStream, so its cost stays flat however many workers run.
python-dynamodb-lock is synchronous and heartbeats on its own threads; it runs here on one
background thread, and the worker reads ``is_leader``. A leader that loses the lock (its
heartbeats failed past the safe period, or another client overwrote it) stops syncing at
once; a dead leader's lock is taken over within the lock's lease duration.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from typing import Any

import boto3
import structlog
from botocore.exceptions import ClientError
from python_dynamodb_lock.python_dynamodb_lock import (
    DynamoDBLock,
    DynamoDBLockClient,
    DynamoDBLockError,
)

from bridge.aws import client_kwargs
from bridge.config import SourceConfig
from bridge.leases.units import OnUnits, count_units

log = structlog.get_logger("bridge.leader")

LOCK_KEY = "shard-sync-leader"
ACQUIRE_PATIENCE = timedelta(days=1)


class LeaderElection:
    def __init__(
        self,
        source: SourceConfig,
        *,
        table: str,
        worker_id: str,
        lease_duration: float,
        on_units: OnUnits | None = None,
    ) -> None:
        self.source = source
        self.on_units = on_units
        """Told the capacity units of the lock's calls (``bridge.leases.units``)."""
        self.table = table
        self.worker_id = worker_id
        # ``lease`` is the promise: a dead leader is replaced within it. A contender takes the
        # lock once it has watched it unchanged for longer than the lease written in the lock,
        # and it looks once a heartbeat, so the first look at the dead leader's last heartbeat
        # and the look that takes over may each come up to a heartbeat late. The lease written
        # in the lock is therefore two heartbeats shorter than the promise. The library also
        # requires heartbeat < safe period < written lease: a leader whose heartbeats fail for
        # the safe period stops leading before anyone may take over. Two leaders for a moment
        # would cost only duplicate DescribeStream calls: every lease write is conditional.
        self.lease = timedelta(seconds=max(lease_duration, 1.0))
        self.heartbeat = self.lease / 10
        # Whole seconds: the library stores it as a number, and boto3 refuses a float that
        # has no exact decimal form (2.4000000000000004). Rounding down keeps the promise.
        self.written_lease = timedelta(
            seconds=max(1, math.floor((self.lease - self.heartbeat * 2).total_seconds()))
        )
        self.safe = min(self.lease / 2, self.written_lease - self.heartbeat)
        self._leader = threading.Event()
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: DynamoDBLockClient | None = None
        self.terms = 0
        self._log = log.bind(worker=worker_id, lock_table=table)

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set()

    def wait_until_leader(self, timeout: float) -> bool:
        return self._leader.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Give the lock back, so another worker leads at once instead of after its lease."""
        self._stop.set()
        client = self._client
        if client is not None:
            # Ends an acquire in progress at its next retry (within a heartbeat); a lock held is
            # released by the election thread itself (``_lead``), which wakes on ``_stop``.
            client.close()
        if self._thread is not None:
            limit = (
                timeout
                if timeout is not None
                else (self.lease + self.heartbeat * 4).total_seconds()
            )
            self._thread.join(limit)

    # -- the election thread --------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._elect()
            except Exception as exc:
                # The lock table unreachable or refused: keep trying; the worker goes on
                # processing its leases meanwhile, only shard sync waits for a leader.
                self._leader.clear()
                self._log.warning("leader election failed; retrying", error=repr(exc))
                self._stop.wait(self.heartbeat.total_seconds())

    def _elect(self) -> None:
        resource = boto3.resource("dynamodb", **client_kwargs(self.source))
        if self.on_units is not None:
            count_units(resource.meta.client, [self.table], self.on_units)
        self._ensure_table(resource.meta.client)
        client = DynamoDBLockClient(
            resource,
            table_name=self.table,
            owner_name=self.worker_id,
            heartbeat_period=self.heartbeat,
            safe_period=self.safe,
            lease_duration=self.written_lease,
        )
        self._client = client
        if self._stop.is_set():  # stop() ran before the client existed: it could not close it
            client.close()
        try:
            while not self._stop.is_set():
                lock = self._acquire(client)
                if lock is None:
                    continue
                self._lead(lock)
        finally:
            self._leader.clear()
            client.close(release_locks=True)

    def _acquire(self, client: DynamoDBLockClient) -> DynamoDBLock | None:
        try:
            return client.acquire_lock(
                LOCK_KEY,
                retry_period=self.heartbeat,
                # The library takes a dead leader's lock only after watching it unchanged for a
                # whole lease *within one call*: a call that timed out would throw that watch
                # away and the next would start over, so a leader killed near the end of a call
                # would be replaced after up to two leases. One call waits as long as it takes;
                # ``stop`` ends it by closing the client.
                retry_timeout=ACQUIRE_PATIENCE,
                app_callback=self._on_lock_event,
            )
        except DynamoDBLockError as exc:
            if self._stop.is_set():
                return None
            if exc.code != DynamoDBLockError.ACQUIRE_TIMEOUT:
                self._log.warning("leader lock unavailable", error=str(exc))
                self._stop.wait(self.heartbeat.total_seconds())
            return None

    def _lead(self, lock: DynamoDBLock) -> None:
        self._lost.clear()
        self._leader.set()
        self.terms += 1
        self._log.info("became leader: this worker syncs shards")
        while not (self._stop.is_set() or self._lost.is_set()):
            self._stop.wait(self.heartbeat.total_seconds())
        self._leader.clear()
        if self._lost.is_set():
            self._log.warning("leadership lost: another worker syncs shards now")
        try:
            lock.release(best_effort=True)
        except Exception as exc:  # the lock may already be someone else's
            self._log.debug("releasing the leader lock failed", error=repr(exc))

    def _on_lock_event(self, code: str, lock: Any) -> None:
        # LOCK_IN_DANGER: heartbeats failing for the safe period; stop leading before the
        # lease runs out and another worker takes over. LOCK_STOLEN: already taken over.
        self._leader.clear()
        self._lost.set()
        self._log.warning("leader lock event", code=code)

    def _ensure_table(self, client: Any) -> None:
        try:
            DynamoDBLockClient.create_dynamodb_table(client, table_name=self.table)
            client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
