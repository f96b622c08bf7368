"""values.schema.json accepts the chart's own values and refuses wrong ones before anything is
rendered: a wrong type, an unknown key, a negative count, a value outside its enum."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from bridge.config import BridgeConfig
from tests.deploy.chart import CHART, DEFAULTS, SCHEMA, example, merged

jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema")

VALID = {
    "defaults": {},
    "values-full": example("values-full.yaml"),
    "values-replica": example("values-replica.yaml"),
}

INVALID: dict[str, dict[str, Any]] = {
    "replicas as a string": {"replicaCount": "two"},
    "negative replicas": {"replicaCount": -1},
    "unknown top-level key": {"replicas": 3},
    "unknown nested key": {"image": {"registry": "example.com"}},
    "misspelt config key": {"config": {"source": {"tabel": "orders"}}},
    "worker_id shared by every pod": {"config": {"worker_id": "w1"}},
    "static credentials in a ConfigMap": {"config": {"source": {"aws_secret_access_key": "x"}}},
    "unknown workload kind": {"kind": "StatefulSet"},
    "unknown mode": {"mode": "leader"},
    "metrics server off": {"config": {"metrics": {"enabled": False}}},
    "metrics on a random port": {"config": {"metrics": {"port": 0}}},
    "replica metrics port out of range": {"replicaConfig": {"metrics": {"port": 70000}}},
    "bad duration": {"config": {"coordination": {"lease_duration": "ten seconds"}}},
    "max_records above the API's limit": {"config": {"polling": {"max_records": 5000}}},
    "unknown processor kind": {"config": {"processor": {"kind": "postgres"}}},
    "unknown start position": {"config": {"source": {"start": "earliest"}}},
    "zero grace period": {"terminationGracePeriodSeconds": 0},
    "annotation that is not a string": {"serviceAccount": {"annotations": {"a": True}}},
    "unknown pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "probe without a period": {"readinessProbe": {"periodSeconds": 0}},
    "memory request that is no quantity": {"resources": {"requests": {"memory": "lots"}}},
    "autoscaling below one pod": {"autoscaling": {"minReplicas": 0}},
    "relative data path": {"data": {"mountPath": "var/lib/bridge"}},
}

# Config keys the chart refuses on purpose (see values.yaml): one worker id for every pod would
# make them all one worker, and secrets do not belong in a ConfigMap.
NOT_IN_CHART = {"worker_id", "source.aws_access_key_id", "source.aws_secret_access_key"}


def errors(values: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    found = validator.iter_errors(merged(DEFAULTS, values))
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in found]


def test_the_schema_is_a_valid_draft_7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", sorted(VALID))
def test_the_charts_own_values_are_valid(name: str) -> None:
    assert errors(VALID[name]) == []


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_values_are_rejected(case: str) -> None:
    assert errors(INVALID[case]), f"the schema accepted {INVALID[case]}"


@pytest.mark.parametrize("case", sorted(INVALID))
def test_helm_itself_rejects_invalid_values(case: str) -> None:
    helm_python = pytest.importorskip("helm_python", reason="pip install helm-python-sdk")
    values = INVALID[case]
    (top,) = values
    with (
        helm_python.Chart.load(CHART) as chart,
        pytest.raises(helm_python.HelmValuesError, match=re.escape(top)),
    ):
        chart.validate_schema(values)


def test_the_config_schema_covers_every_bridge_config_key() -> None:
    """When bridge gains a configuration key, the chart must learn it (or refuse it here)."""
    in_model = set(_model_keys(BridgeConfig)) - NOT_IN_CHART
    in_schema = set(_schema_keys(SCHEMA["properties"]["config"]))
    assert in_schema == in_model


def test_the_full_example_sets_every_option() -> None:
    full = VALID["values-full"]
    missing = [
        path
        for path in _schema_keys(SCHEMA)
        if not path.startswith(("global", "replicaConfig")) and not _has(full, path)
    ]
    assert missing == []


def _model_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        yield prefix + name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _model_keys(annotation, f"{prefix}{name}.")


def _schema_keys(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for name, child in node.get("properties", {}).items():
        yield prefix + name
        yield from _schema_keys(child, f"{prefix}{name}.")


def _has(values: Mapping[str, Any], path: str) -> bool:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
