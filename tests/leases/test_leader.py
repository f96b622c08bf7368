"""Leader election over DynamoDB (moto over HTTP): one leader at a time, quick handoff."""

from __future__ import annotations

import uuid

from bridge.config import SourceConfig
from bridge.leases.leader import LeaderElection
from bridge.local.processes import MotoServer

LEASE = 2.0


def election(moto_server: MotoServer, table: str, worker: str) -> LeaderElection:
    source = SourceConfig(
        table="orders",
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",  # type: ignore[arg-type]
        aws_secret_access_key="testing",  # type: ignore[arg-type]
    )
    return LeaderElection(source, table=table, worker_id=worker, lease_duration=LEASE)


def test_one_leader_and_a_quick_handoff_when_it_stops(moto_server: MotoServer) -> None:
    table = f"app-{uuid.uuid4().hex[:6]}-lock"
    first = election(moto_server, table, "w1")
    first.start()
    try:
        assert first.wait_until_leader(30)
        second = election(moto_server, table, "w2")
        second.start()
        try:
            assert not second.wait_until_leader(LEASE * 1.5), "two leaders at once"
            assert first.is_leader
            first.stop()
            assert not first.is_leader
            assert second.wait_until_leader(LEASE * 3)
            assert second.terms == 1
        finally:
            second.stop()
    finally:
        first.stop()


def test_unreachable_lock_table_means_no_leader_and_no_crash() -> None:
    source = SourceConfig(
        table="orders",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",  # type: ignore[arg-type]
        aws_secret_access_key="testing",  # type: ignore[arg-type]
    )
    lonely = LeaderElection(source, table="x-lock", worker_id="w", lease_duration=LEASE)
    lonely.start()
    try:
        assert not lonely.wait_until_leader(1.0)
    finally:
        lonely.stop()


def test_lock_timings_keep_the_takeover_within_the_lease_for_any_duration() -> None:
    source = SourceConfig(table="orders")
    for lease in (1.0, 1.5, 2.0, 2.5, 3.0, 3.3, 7.0, 10.0, 30.0):
        timing = LeaderElection(source, table="t", worker_id="w", lease_duration=lease)
        written = timing.written_lease.total_seconds()
        heartbeat = timing.heartbeat.total_seconds()
        safe = timing.safe.total_seconds()
        # The library's own rule, and a number DynamoDB's serializer accepts exactly.
        assert heartbeat < safe < written, (lease, heartbeat, safe, written)
        assert written == int(written)
        if lease >= 1.25:  # below that, a whole second is already more than the promise
            # Seen late by up to a heartbeat, taken over up to a heartbeat late.
            assert written + 2 * heartbeat <= lease, (lease, written)
