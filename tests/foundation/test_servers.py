"""The real servers the suite relies on answer real clients over the network."""

from __future__ import annotations

import uuid

import aioboto3
import boto3
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.local.processes import KafkaBroker, MotoServer


async def test_moto_stream_round_trip_over_http(moto_server: MotoServer) -> None:
    table = f"t-{uuid.uuid4().hex[:8]}"
    ddb = boto3.client("dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "n": {"N": "7"}})

    session = aioboto3.Session()
    async with session.client(
        "dynamodbstreams", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ) as streams:
        arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = (await streams.describe_stream(StreamArn=arn))["StreamDescription"]["Shards"][0]
        iterator = (
            await streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )
        )["ShardIterator"]
        records = (await streams.get_records(ShardIterator=iterator))["Records"]

    assert [r["eventName"] for r in records] == ["INSERT"]
    assert records[0]["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "n": {"N": "7"}}


def test_kafka_produce_and_consume(kafka_broker: KafkaBroker) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)

    producer = Producer(
        {"bootstrap.servers": kafka_broker.bootstrap_servers, "enable.idempotence": True}
    )
    for i in range(10):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap_servers,
            "group.id": "unused",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[bytes] = []
    for _ in range(100):
        if len(seen) == 10:
            break
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            seen.append(message.value())
    consumer.close()
    assert seen == [f"v{i}".encode() for i in range(10)]
