"""``bridge replica`` against a real broker (tansu): filtering, readiness on ``/readyz`` and in
``_bridge_status`` before catch-up, after it and with the broker frozen, ``bridge query``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bridge.local.processes import KafkaBroker, free_port
from bridge.replica import stored_offsets
from tests.kafka.topic_reader import create_topic
from tests.replica.support import (
    Publisher,
    await_for,
    following,
    replica_config,
    replica_rows,
    status_of,
    wait_for,
    write_yaml,
)


async def test_the_filter_keeps_only_matching_items(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = create_topic(kafka_broker.bootstrap_servers, partitions=3)
    publisher = Publisher(kafka_broker.bootstrap_servers, topic)
    path = tmp_path / "r.db"
    config = replica_config(
        path,
        kafka_broker.bootstrap_servers,
        topic,
        filter={
            "key_prefix": {"attribute": "pk", "prefix": "t1#"},
            "attribute": "live",
            "equals": True,
        },
    )
    publisher.publish(
        [
            publisher.change("INSERT", "t1#a", live=True),
            publisher.change("INSERT", "t1#b", live=True),
            publisher.change("INSERT", "t1#c", live=False),  # kept prefix, not live
            publisher.change("INSERT", "t2#a", live=True),  # another tenant
            publisher.change("MODIFY", "t1#b", live=False),  # stops matching: deleted
            publisher.change("MODIFY", "t1#c", live=True),  # starts matching: stored
        ]
    )
    async with following(config) as follower:
        await await_for(lambda: follower.verdict().ready, 20, "catch-up")
        assert set(replica_rows(path, "orders")) == {("t1#a",), ("t1#c",)}
        publisher.publish([publisher.change("REMOVE", "t1#a"), publisher.change("INSERT", "t2#b")])
        await await_for(lambda: set(replica_rows(path, "orders")) == {("t1#c",)}, 20, "the delete")
    # Every message was consumed, kept or not: 9 messages (a REMOVE and its tombstone).
    assert sum(offset + 1 for offset in stored_offsets(path, topic).values()) == 9


@contextlib.contextmanager
def replica_process(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--log-format", "json", "replica", "-c", str(config)],
            stdout=out,
            stderr=out,
            env=clean,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def readyz(port: int) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None  # not listening yet


def test_readiness_before_catch_up_after_it_and_with_the_broker_frozen(
    own_broker: KafkaBroker, tmp_path: Path
) -> None:
    servers = own_broker.bootstrap_servers
    topic = create_topic(servers, partitions=2)
    publisher = Publisher(servers, topic)
    publisher.publish([publisher.change("INSERT", f"k{n}", n=n) for n in range(50)])
    path = tmp_path / "r.db"
    port = free_port()
    config = replica_config(
        path, servers, topic, stall_after="2s", metrics={"port": port}, ready_lag="1s"
    )
    log = tmp_path / "replica.log"

    own_broker.signal(signal.SIGSTOP)  # the replica starts while the broker cannot answer
    try:
        with replica_process(write_yaml(tmp_path / "replica.yaml", config), log) as process:
            wait_for(lambda: readyz(port) is not None, 20, "/readyz to answer")
            assert (readyz(port) or (0,))[0] == 503
            wait_for(
                lambda: readyz(port) == (503, f"kafka {servers} not reached yet\n"),
                20,
                "readiness naming the broker",
            )
            wait_for(lambda: status_of(path) is not None, 20, "the status row")
            assert status_of(path) is not None and not status_of(path)[0]  # type: ignore[index]
            assert replica_rows(path, "orders") == {}

            own_broker.signal(signal.SIGCONT)
            wait_for(lambda: (readyz(port) or (0,))[0] == 200, 30, "ready after catch-up")
            # Ready means within ready_lag of the topic by time; every row follows at once.
            wait_for(lambda: len(replica_rows(path, "orders")) == 50, 10, "all 50 rows")
            wait_for(lambda: (status_of(path) or (False,))[0], 10, "_bridge_status ready")

            own_broker.signal(signal.SIGSTOP)
            wait_for(lambda: (readyz(port) or (200,))[0] == 503, 30, "not ready, frozen broker")
            reason = (readyz(port) or (0, ""))[1]
            assert servers in reason, reason
            # The status row says the same, naming the broker (its "silent for Ns" moves on,
            # so the two texts agree only when read in the same second).
            wait_for(
                lambda: (
                    (status := status_of(path)) is not None
                    and not status[0]
                    and servers in status[1]
                ),
                10,
                "status not ready, naming the broker",
            )
            own_broker.signal(signal.SIGCONT)
            wait_for(lambda: (readyz(port) or (0,))[0] == 200, 30, "ready again")

            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
    finally:
        own_broker.signal(signal.SIGCONT)
    assert status_of(path) == (False, "stopped")
    text = log.read_text()
    assert '"kafka broker unreachable, retrying"' in text and servers in text


async def test_bridge_query_reads_the_replica_file(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    import asyncio

    topic = create_topic(kafka_broker.bootstrap_servers, partitions=1)
    publisher = Publisher(kafka_broker.bootstrap_servers, topic)
    publisher.publish([publisher.change("INSERT", "a", qty=3)])
    path = tmp_path / "r.db"
    config = replica_config(path, kafka_broker.bootstrap_servers, topic)
    yaml_path = write_yaml(tmp_path / "replica.yaml", config)
    async with following(config) as follower:
        await await_for(lambda: follower.verdict().ready, 20, "catch-up")
        await follower.publish_status()
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "bridge",
                "query",
                "-c",
                str(yaml_path),
                "--json",
                "SELECT pk, json_extract(item, '$.qty') AS qty FROM orders",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert '"qty": 3' in done.stdout and '"pk": "a"' in done.stdout
