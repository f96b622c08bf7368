"""A custom processor that cannot apply one record, through ``bridge run`` as users run it: the
records before it are delivered once, the poison record lands in the dead-letter destination
(a Kafka topic, an S3 prefix) with its error, nothing else is lost, and a frozen destination
holds the shard until it answers again. ``bridge dead-letters replay`` then hands the record to
the fixed processor."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
import yaml

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from tests.kafka.topic_reader import TopicReader, create_topic
from tests.support.journal import read_journal
from tests.support.worker_process import ROOT, WorkerProcess
from tests.support.workload import create_table
from tests.worker.conftest import dynamodb
from tests.worker.test_sigkill import lease_checkpoints

POISON = ("k07", 27)  # the 7th write of the second round: records before it in its batch
WAITING = "dead-letter destination unavailable; the shard waits for it"


def write(ddb: Any, table: str, versions: range) -> list[tuple[str, int]]:
    """One put per version, over keys k00..k09; returns (key, version) in write order."""
    written = []
    for version in versions:
        key = f"k{version % 10:02d}"
        item = {"pk": {"S": key}, "version": {"N": str(version)}}
        ddb.put_item(TableName=table, Item=item)
        written.append((key, version))
    return written


def bridge_yaml(
    path: Path, app: str, table: str, local: LocalEndpoint, processor: dict[str, Any]
) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "app": app,
                "source": {
                    "table": table,
                    "endpoint_url": local.endpoint_url,
                    "region": "us-east-1",
                    "aws_access_key_id": "testing",
                    "aws_secret_access_key": "testing",
                },
                "coordination": {"lease_duration": "3s", "take_interval": "200ms"},
                # Slow polls: the second round's writes arrive as one batch.
                "polling": {"interval": "1s", "idle_interval": "1s"},
                "processor": processor,
                "metrics": {"port": 0},
            }
        )
    )
    return path


def replay(config: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bridge", "dead-letters", "replay", "-c", str(config)]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("destination", ["kafka", "s3"])
def test_the_poison_record_goes_to_the_dead_letters_and_nothing_else_is_lost(
    make_local_endpoint: Callable[..., LocalEndpoint],
    own_broker: KafkaBroker,
    tmp_path: Path,
    destination: str,
) -> None:
    local = make_local_endpoint(shards=1)
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb, prefix="poison")
    app = f"poison-{destination}"
    journal = tmp_path / "journal.jsonl"
    bucket = f"dead-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=local.endpoint_url, region_name="us-east-1")
    if destination == "kafka":
        topic = create_topic(own_broker.bootstrap_servers, "dead", partitions=1)
        dead_letter: dict[str, Any] = {
            "kind": "kafka",
            "bootstrap_servers": own_broker.bootstrap_servers,
            "topic": topic,
            "producer": {"message.timeout.ms": 2000},
        }
    else:
        s3.create_bucket(Bucket=bucket)
        dead_letter = {"kind": "s3", "bucket": bucket, "endpoint_url": local.endpoint_url}
    # Kafka: the processor names the failed record (ReportBatchItemFailures); S3: the whole
    # batch fails, and bisecting it finds the record.
    poisoned = {
        "kind": "tests.support.journal:PoisonedJournal",
        "options": {
            "path": str(journal),
            "poison": f"{POISON[0]}@{POISON[1]}",
            "report": destination == "kafka",
        },
        "on_error": "dead_letter",
        "max_attempts": 2,
        "bisect_on_error": destination == "s3",
        "dead_letter": dead_letter,
    }
    config = bridge_yaml(tmp_path / "bridge.yaml", app, table, local, poisoned)
    worker = WorkerProcess(None, config, tmp_path / "worker.log")
    try:
        first = write(ddb, table, range(1, 21))
        worker.wait_for(lambda: len(read_journal(journal)) >= len(first), 60, "the first round")
        if destination == "kafka":
            own_broker.signal(signal.SIGSTOP)  # the dead-letter destination stops answering
        second = write(ddb, table, range(21, 41))
        if destination == "kafka":
            worker.wait_for(lambda: len(worker.logged(WAITING)) >= 2, 60, "two refused writes")
            # Held: the checkpoint stays before the poison record, nothing after it goes on.
            (held,) = lease_checkpoints(ddb, f"{app}-leases").values()
            poison_seq = worker.logged(WAITING)[0]["seq"]
            assert held is not None and int(held) < int(poison_seq)
            seen = {(e.key, e.version) for e in read_journal(journal)}
            assert seen == set(first) | set(second[: second.index(POISON)])
            own_broker.signal(signal.SIGCONT)
        wanted = [change for change in first + second if change != POISON]
        worker.wait_for(
            lambda: len(read_journal(journal)) >= len(wanted), 120, "every other change"
        )
        worker.wait_for(
            lambda: worker.logged("record sent to the dead letters"), 30, "the dead letter"
        )
        worker.terminate()
        assert worker.wait(60) == 0, worker.log_tail()
    finally:
        worker.stop_for_teardown()
    if destination == "kafka":
        own_broker.signal(signal.SIGCONT)

    # Every other change exactly once, each key's in write order; the poison record not.
    entries = read_journal(journal)
    delivered = [(e.key, e.version) for e in entries]
    assert Counter(delivered) == Counter(wanted)
    for key in {k for k, _ in wanted}:
        assert [v for k, v in delivered if k == key] == [v for k, v in wanted if k == key]
    (sent,) = worker.logged("record sent to the dead letters")
    assert sent["reason"] == ("reported" if destination == "kafka" else "max_attempts")
    (checkpoint,) = lease_checkpoints(ddb, f"{app}-leases").values()
    assert checkpoint == max(entries, key=lambda e: int(e.seq)).seq

    # The dead letter: the record as DynamoDB JSON, and the error that stopped it.
    if destination == "kafka":
        with TopicReader(own_broker.bootstrap_servers, topic) as reader:
            (message,) = reader.read_until(lambda found: len(found) >= 1, 30)
        letter = orjson.loads(message.value or b"")
    else:
        (listed,) = s3.list_objects_v2(Bucket=bucket)["Contents"]
        letter = orjson.loads(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
    assert letter["seq"] == sent["seq"]
    assert letter["record"]["dynamodb"]["NewImage"]["version"] == {"N": str(POISON[1])}
    assert letter["error"].endswith(f"cannot apply {POISON[0]}@{POISON[1]}")

    # The processor fixed: the replay hands it the record, and takes it off the destination.
    fixed = {**poisoned, "kind": "tests.support.journal:JournalProcessor"}
    fixed["options"] = {"path": str(journal)}
    fixed_config = bridge_yaml(tmp_path / "fixed.yaml", app, table, local, fixed)
    done = replay(fixed_config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replayed 1 dead letter(s)" in done.stdout
    assert [(e.key, e.version) for e in read_journal(journal)][len(entries) :] == [POISON]
    again = replay(fixed_config)
    assert again.returncode == 0 and "replayed 0 dead letter(s)" in again.stdout, again.stderr
