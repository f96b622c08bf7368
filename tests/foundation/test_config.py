"""``bridge config check`` accepts the documented sample and names every bad key."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import ConfigError, format_duration, load_config, parse_duration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "bridge.yaml"


def bridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def sample() -> dict[str, object]:
    return yaml.safe_load(SAMPLE.read_text())


def test_readme_sample_is_the_example_file() -> None:
    assert SAMPLE.read_text().strip() in (ROOT / "README.md").read_text()


def test_sample_is_accepted_and_printed_resolved() -> None:
    result = bridge("config", "check", "-c", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["app"] == "orders-to-kafka"
    assert printed["polling"]["interval"] == "250ms"
    assert printed["coordination"]["lease_duration"] == "10s"
    assert printed["processor"]["options"]["topic"] == "{table}"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["source"].pop("table"), "source.table: required key is missing"),
        (lambda d: d.pop("app"), "app: required key is missing"),
        (lambda d: d["polling"].update(intervall="1s"), "polling.intervall: unknown key"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (
            lambda d: d["polling"].update(interval="10x"),
            "polling.interval: expected a duration such as 250ms",
        ),
        (
            lambda d: d["coordination"].update(max_steals_per_cycle="many"),
            "coordination.max_steals_per_cycle: Input should be a valid integer",
        ),
        (
            lambda d: d["source"].update(start="yesterday"),
            "source.start: Input should be 'trim_horizon', 'latest', 'bootstrap' or 'auto'",
        ),
        (lambda d: d.update(source="orders"), "source: Input should be a valid dictionary"),
        (
            lambda d: d["processor"].update(kind="not a class"),
            "processor.kind: expected log, sqlite, kafka or module.path:ClassName",
        ),
    ],
    ids=[
        "missing-table",
        "missing-app",
        "unknown-key",
        "unknown-top",
        "bad-duration",
        "wrong-type-int",
        "bad-choice",
        "wrong-type-section",
        "bad-kind",
    ],
)
def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path, mutate, expected: str) -> None:
    data = sample()
    mutate(data)
    result = bridge("config", "check", "-c", str(write(tmp_path, data)))
    assert result.returncode == 2
    assert expected in result.stderr


def test_bad_value_message_shows_the_value(tmp_path: Path) -> None:
    data = sample()
    data["polling"]["interval"] = "10x"  # type: ignore[index]
    result = bridge("config", "check", "-c", str(write(tmp_path, data)))
    assert "(got '10x')" in result.stderr


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    env = {"BRIDGE_POLLING__INTERVAL": "100ms", "BRIDGE_SOURCE__TABLE": "payments"}
    config = load_config(SAMPLE, env=env)
    assert config.polling.interval == timedelta(milliseconds=100)
    assert config.source.table == "payments"


def test_bad_environment_override_names_the_variable() -> None:
    result = bridge("config", "check", "-c", str(SAMPLE), env={"BRIDGE_POLLING__INTERVAL": "soon"})
    assert result.returncode == 2
    assert "polling.interval" in result.stderr
    assert "BRIDGE_POLLING__INTERVAL" in result.stderr


def test_unknown_environment_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"source\.tabel: unknown key"):
        load_config(SAMPLE, env={"BRIDGE_SOURCE__TABEL": "x"})


def test_secrets_are_masked(tmp_path: Path) -> None:
    data = sample()
    data["source"]["aws_secret_access_key"] = "hunter2"  # type: ignore[index]
    data["processor"]["options"]["sasl.password"] = "hunter3"  # type: ignore[index]
    result = bridge("config", "check", "-c", str(write(tmp_path, data)))
    assert result.returncode == 0, result.stderr
    assert "hunter" not in result.stdout
    assert "********" in result.stdout


@pytest.mark.parametrize(
    ("text", "problem"),
    [("app: [unclosed", "not valid YAML at line"), ("- a list", "expected a mapping")],
)
def test_unreadable_files_exit_2(tmp_path: Path, text: str, problem: str) -> None:
    result = bridge("config", "check", "-c", str(write(tmp_path, text)))
    assert result.returncode == 2
    assert problem in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = bridge("config", "check", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "no such configuration file" in result.stderr


def test_renew_must_be_inside_the_lease(tmp_path: Path) -> None:
    data = sample()
    data["coordination"]["renew_interval"] = "20s"  # type: ignore[index]
    with pytest.raises(ConfigError, match="renew_interval must be shorter"):
        load_config(write(tmp_path, data), env={})


@given(st.integers(min_value=0, max_value=10**9))
def test_durations_round_trip(millis: int) -> None:
    value = timedelta(milliseconds=millis)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("bad", ["", "ten", "-1s", "1 fortnight", True, [1]])
def test_bad_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


def test_version_and_help() -> None:
    assert bridge("--version").stdout.startswith("bridge ")
    assert "config" in bridge("--help").stdout
