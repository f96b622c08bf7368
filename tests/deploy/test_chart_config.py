"""The bridge.yaml the chart renders is one that bridge itself accepts, with the environment
overrides the pod sets, and its metrics port is the one the probes ask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_config
from bridge.processors.kafka import KafkaOptions
from tests.deploy.chart import REPO, Manifest, Renderer, example, find, renderer

WORKER_VALUE_SETS = {"defaults": {}, "values-full": example("values-full.yaml")}


@pytest.fixture(scope="module")
def render() -> Renderer:
    return renderer()


def mounted_config(manifests: list[Manifest], directory: Path) -> Path:
    path = directory / "bridge.yaml"
    path.write_text(find(manifests, "ConfigMap")["data"]["bridge.yaml"], encoding="utf-8")
    return path


def pod_environment(manifests: list[Manifest]) -> dict[str, str]:
    """The literal variables the pod sets (those from Secrets are not known here)."""
    workload = next(m for m in manifests if m["kind"] in {"Deployment", "DaemonSet"})
    (bridge,) = workload["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in bridge.get("env", []) if "value" in e}


@pytest.mark.parametrize("name", sorted(WORKER_VALUE_SETS))
def test_the_rendered_config_passes_bridges_validation(
    render: Renderer, name: str, tmp_path: Path
) -> None:
    values: dict[str, Any] = WORKER_VALUE_SETS[name]
    manifests = render(values)
    env = pod_environment(manifests)
    config = load_config(mounted_config(manifests, tmp_path), env=env)

    assert config.app == values.get("config", {}).get("app", "bridge")
    workload = find(manifests, "Deployment")
    (port,) = workload["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert config.metrics.enabled
    assert config.metrics.port == port["containerPort"]
    if "BRIDGE_POLLING__MAX_RECORDS" in env:
        assert config.polling.max_records == int(env["BRIDGE_POLLING__MAX_RECORDS"])
    if config.processor.kind == "kafka":
        KafkaOptions.model_validate(config.processor.options)


def test_bridge_config_check_accepts_the_default_chart_config(
    render: Renderer, tmp_path: Path
) -> None:
    path = mounted_config(render({}), tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    answer = subprocess.run(
        [sys.executable, "-m", "bridge", "config", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env=clean,
    )
    assert answer.returncode == 0, answer.stderr
    assert "app: bridge" in answer.stdout


def test_the_replica_config_passes_bridge_replicas_validation(
    render: Renderer, tmp_path: Path
) -> None:
    replica = pytest.importorskip(
        "bridge.replica", reason="bridge replica (issue 8) has not landed yet"
    )
    load = getattr(replica, "load_replica_config", None)
    if load is None:
        pytest.skip("bridge.replica exposes no load_replica_config(path, env) to validate with")
    manifests = render(example("values-replica.yaml"))
    load(mounted_config(manifests, tmp_path), env=pod_environment(manifests))
