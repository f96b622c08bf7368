"""The ``log`` processor logs one line per change, at any log level without failing."""

from __future__ import annotations

import pytest
import structlog

from bridge.logs import configure_logging
from bridge.processors.api import Batch
from bridge.processors.log import LogProcessor
from tests.sqlite.records import change


@pytest.mark.parametrize(("level", "logged"), [("debug", 2), ("info", 2), ("warning", 0)])
async def test_one_line_per_change_and_no_failure_at_any_level(level: str, logged: int) -> None:
    configure_logging(level, json=True)
    request_reset = structlog.reset_defaults
    processor = LogProcessor(images=False)
    batch = Batch(
        "s1", [change("INSERT", 1, {"id": "a"}, {"v": 1}), change("REMOVE", 2, {"id": "a"})]
    )
    try:
        with structlog.testing.capture_logs() as logs:
            await processor.process(batch)
    finally:
        request_reset()  # later tests expect structlog's defaults
    changes = [entry for entry in logs if entry["event"] == "change"]
    expected = [("INSERT", "1"), ("REMOVE", "2")][:logged]
    assert [(c["op"], c["seq"]) for c in changes] == expected
