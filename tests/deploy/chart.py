"""Render helm/bridge from Python: helm-python-sdk (no helm binary), else a `helm` binary.

Both run Helm's own Go template engine and values coalescing, so what the tests see is what
`helm install` would send to the cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "bridge"
EXAMPLES = CHART / "examples"
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

Manifest = dict[str, Any]
Renderer = Callable[[Mapping[str, Any]], list[Manifest]]


class RenderError(Exception):
    """The chart refused the values (schema or a template's `fail`); the message says why."""


def example(name: str) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    return values


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge, later layers winning and null deleting a key: Helm's coalescing of values."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if value is None and key in out:
                del out[key]
            elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


def find(manifests: list[Manifest], kind: str) -> Manifest:
    matches = [m for m in manifests if m["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


def kinds(manifests: list[Manifest]) -> list[str]:
    return sorted(m["kind"] for m in manifests)


def _documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _sdk_renderer() -> Renderer | None:
    try:
        import helm_python
    except ImportError:
        return None
    try:
        helm_python.helm_c_version()
    except (OSError, helm_python.HelmError):  # the bundled library does not load here
        return None

    def render(values: Mapping[str, Any]) -> list[Manifest]:
        with helm_python.Chart.load(CHART) as chart:
            try:
                chart.validate_schema(dict(values))
                rendered = chart.render(dict(values), name="orders", namespace="bridge")
            except (helm_python.HelmValuesError, helm_python.HelmRenderError) as exc:
                raise RenderError(str(exc)) from exc
        manifests: list[Manifest] = []
        for path, text in sorted(rendered.items()):
            if path.endswith(".yaml"):
                manifests.extend(_documents(text))
        return manifests

    return render


def _binary_renderer(helm: str) -> Renderer:
    def render(values: Mapping[str, Any]) -> list[Manifest]:
        answer = subprocess.run(
            [helm, "template", "orders", str(CHART), "--namespace", "bridge", "--values", "-"],
            input=json.dumps(dict(values)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if answer.returncode != 0:
            raise RenderError(answer.stderr)
        return _documents(answer.stdout)

    return render


def renderer() -> Renderer:
    """The first way to render that this machine has; skips the test when there is none."""
    sdk = _sdk_renderer()
    if sdk is not None:
        return sdk
    helm = shutil.which("helm")
    if helm is not None:
        return _binary_renderer(helm)
    pytest.skip("no chart renderer: pip install helm-python-sdk (or put a helm binary on PATH)")
