"""``bridge dead-letters replay``: dead letters handed to the (fixed) processor again, taken off
the destination once they went through; one that fails again stays and the command exits 1."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import yaml

from bridge.processors.dead_letter import DeadLetterFile
from tests.sqlite.records import change
from tests.support.journal import read_journal
from tests.support.worker_process import ROOT


def config(tmp_path: Path, processor: str, options: dict[str, object]) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "app": "replay",
                "source": {"table": "orders", "endpoint_url": "http://127.0.0.1:9"},
                "processor": {
                    "kind": processor,
                    "options": options,
                    "on_error": "dead_letter",
                    "dead_letter_path": str(tmp_path / "dead.jsonl"),
                },
            }
        )
    )
    return path


def replay(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "dead-letters", "replay", "-c", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dead_letters(tmp_path: Path, seqs: list[int]) -> None:
    async def write() -> None:
        dead = DeadLetterFile(tmp_path / "dead.jsonl")
        for seq in seqs:
            record = change("MODIFY", seq, {"pk": f"k{seq}"}, {"pk": f"k{seq}", "version": seq})
            await dead.write(record, ValueError("was broken"), 3)

    asyncio.run(write())


def test_the_dead_letters_go_through_the_fixed_processor_and_leave_the_file(
    tmp_path: Path,
) -> None:
    dead_letters(tmp_path, [5, 3, 9])
    journal = tmp_path / "journal.jsonl"
    done = replay(
        config(tmp_path, "tests.support.journal:JournalProcessor", {"path": str(journal)})
    )
    assert done.returncode == 0, done.stderr
    assert "replayed 3 dead letter(s)" in done.stdout
    assert [entry.seq for entry in read_journal(journal)] == ["3", "5", "9"]  # stream order
    assert (tmp_path / "dead.jsonl").read_bytes() == b""


def test_one_that_fails_again_stays_and_the_replay_exits_1(tmp_path: Path) -> None:
    dead_letters(tmp_path, [1, 2, 3])
    done = replay(config(tmp_path, "tests.processors.sample_processors:FailsOnTwo", {}))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "replayed 2 dead letter(s)" in done.stdout and "/2" in done.stderr
    left = (tmp_path / "dead.jsonl").read_bytes().splitlines()
    assert len(left) == 1 and b'"seq":"2"' in left[0]


def test_a_processor_that_keeps_its_own_checkpoint_is_refused(tmp_path: Path) -> None:
    done = replay(config(tmp_path, "sqlite", {"path": str(tmp_path / "r.db")}))
    assert done.returncode == 2
    assert "keeps its own checkpoint" in done.stderr.strip().splitlines()[-1]
