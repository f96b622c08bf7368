"""A moto-style suite in moto's server mode, run twice against one ``bridge local``.

This is how users' own suites meet the endpoint: ``TEST_SERVER_MODE=true``, every test opening
with ``mock_aws()``, which posts ``/moto-api/reset``. If a reset left anything of the Streams
side behind, a test's result would depend on what ran before it, and the second pass (after
a whole first one) would differ from the first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.local import LocalEndpoint

SUITE = Path(__file__).with_name("moto_style_suite.py")
ROOT = Path(__file__).resolve().parents[2]

MakeEndpoint = Callable[..., LocalEndpoint]


def run_suite(endpoint: LocalEndpoint, report: Path) -> dict[str, str]:
    """Each test's outcome (passed, failed, error, skipped) from one child pytest run."""
    environment = {
        **os.environ,
        "TEST_SERVER_MODE": "true",
        "TEST_SERVER_MODE_ENDPOINT": endpoint.endpoint_url,
    }
    completed = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"--junitxml={report}", str(SUITE),
        ],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert report.exists(), completed.stdout + completed.stderr
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        verdicts = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = (
            verdicts[0] if verdicts else "passed"
        )
    return outcomes


@pytest.mark.slow
def test_a_moto_style_suite_gets_the_same_results_twice_against_one_endpoint(
    make_local_endpoint: MakeEndpoint, tmp_path: Path
) -> None:
    endpoint = make_local_endpoint(shards=1)
    first = run_suite(endpoint, tmp_path / "first.xml")
    second = run_suite(endpoint, tmp_path / "second.xml")
    assert first == second
    assert len(first) == 10 and set(first.values()) == {"passed"}, first
