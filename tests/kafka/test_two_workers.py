"""Two ``bridge run`` processes share the stream and one producer each; one is stopped with
SIGTERM mid-run and its shards move to the other. The topic still holds every change, each
item's changes first appearing in write order; repeats only re-send what the handoff left
unacknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from tests.kafka.running import dynamodb
from tests.kafka.topic_reader import ReadMessage, TopicReader, create_topic
from tests.kafka.workload import Workload, create_table, write_all

WRITES = 3_000
KEYS = 200


def start_worker(config: Path, log: Path, name: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", "--log-format", "json", "run", "-c", str(config)],
            stdout=out,
            stderr=out,
            env={**os.environ, "BRIDGE_WORKER_ID": name},
        )


@pytest.mark.slow  # the chaos suite's scenarios cover this too; CI runs both
def test_two_workers_publish_every_change_in_order_through_a_handoff(
    make_local_endpoint: Callable[..., LocalEndpoint], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    local = make_local_endpoint(shards=4, rotate_records=300)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb)
    create_topic(kafka_broker.bootstrap_servers, partitions=3, name=table)
    config = tmp_path / "bridge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "app": f"two-{uuid.uuid4().hex[:6]}",
                "source": {
                    "table": table,
                    "endpoint_url": local.endpoint_url,
                    "aws_access_key_id": "x",
                    "aws_secret_access_key": "x",
                },
                "coordination": {"lease_duration": "3s", "take_interval": "200ms"},
                "polling": {"interval": "20ms", "idle_interval": "200ms"},
                "processor": {
                    "kind": "kafka",
                    "options": {"bootstrap_servers": kafka_broker.bootstrap_servers},
                },
                "metrics": {"enabled": False},
            }
        )
    )
    workload = Workload(WRITES, KEYS)
    log = tmp_path / "workers.log"
    first = start_worker(config, log, "worker-a")
    second = start_worker(config, log, "worker-b")
    writer = threading.Thread(target=write_all, args=(ddb, table, workload), daemon=True)
    try:
        writer.start()
        with TopicReader(kafka_broker.bootstrap_servers, table) as reader:
            reader.read_count(WRITES // 3, within=120)
            first.send_signal(signal.SIGTERM)  # hand its shards over mid-run
            assert first.wait(timeout=60) == 0
            writer.join(timeout=120)
            expected = workload.by_key()

            def complete(messages: list[ReadMessage]) -> bool:
                seen: dict[tuple[str, int], set[str]] = {}
                for message in messages:
                    envelope = message.envelope
                    key = (envelope["keys"]["pk"], envelope["keys"]["sk"])
                    seen.setdefault(key, set()).add(envelope["seq"])
                return sum(len(v) for v in seen.values()) >= WRITES

            messages = reader.read_until(complete, within=120)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)

    by_key: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for message in messages:
        envelope = message.envelope
        key = (envelope["keys"]["pk"], envelope["keys"]["sk"])
        by_key.setdefault(key, []).append((envelope["seq"], envelope["event"]))
    repeats = 0
    for key, changes in expected.items():
        got = by_key[key]
        first_seen: dict[str, str] = {}
        for seq, event in got:
            first_seen.setdefault(seq, event)
        repeats += len(got) - len(first_seen)
        assert list(first_seen.values()) == [c.event for c in changes], f"item {key}"
        seqs = [int(seq) for seq in first_seen]
        assert seqs == sorted(seqs), f"item {key}: first appearances out of order"
    workers = {line for line in log.read_text().splitlines() if '"lease taken"' in line}
    assert any("worker-b" in line for line in workers) and any(
        "worker-a" in line for line in workers
    )
    print(f"\n{len(messages)} messages for {WRITES} changes; {repeats} re-sent across the handoff")
