"""The dead-letter destination the configuration names (``processor.dead_letter``)."""

from __future__ import annotations

from pathlib import Path

import boto3

from bridge.config import BridgeConfig
from bridge.processors.dead_letter import (
    DeadLetterBucket,
    DeadLetterFile,
    DeadLetters,
    DeadLetterTopic,
)


def dead_letters(config: BridgeConfig) -> DeadLetters:
    processor = config.processor
    chosen = processor.dead_letter
    if chosen is None or chosen.kind == "file":
        path = (chosen.path if chosen else None) or processor.dead_letter_path
        return DeadLetterFile(path or Path(f"{config.app}-dead-letter.jsonl"))
    if chosen.kind == "kafka":
        servers = chosen.bootstrap_servers or ""
        if not isinstance(servers, str):
            servers = ",".join(servers)
        topic = chosen.topic or f"{config.app}-dead-letters"
        return DeadLetterTopic(servers, topic, producer=chosen.producer)
    client = boto3.client(
        "s3",
        region_name=chosen.region or config.source.region,
        endpoint_url=chosen.endpoint_url,
    )
    return DeadLetterBucket(chosen.bucket or "", f"{chosen.prefix}{config.app}/", client=client)
