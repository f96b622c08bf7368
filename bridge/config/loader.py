"""Load, overlay and validate configuration, turning every problem into one readable message."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from bridge.config.models import BridgeConfig

ENV_PREFIX = "BRIDGE_"
# Variables of the command line itself, not configuration keys.
_CLI_VARIABLES = frozenset({"BRIDGE_CONFIG", "BRIDGE_LOG_LEVEL", "BRIDGE_LOG_FORMAT"})
_MASK = "********"
_SECRET_WORDS = ("password", "secret", "token", "credential", "sasl.jaas", "private")

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file, the key and the problem."""


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> BridgeConfig:
    return load_model(BridgeConfig, path, env)


def load_model(model: type[M], path: Path | str, env: Mapping[str, str] | None = None) -> M:
    source = Path(path)
    data = _read_yaml(source)
    overrides = _env_overrides(os.environ if env is None else env)
    for keys, (var, value) in overrides.items():
        _set_path(data, keys, value, var)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        origins = {keys: var for keys, (var, _) in overrides.items()}
        raise ConfigError(_describe(source, exc, origins)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{line}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {kind}")
    return dict(data)


def _env_overrides(env: Mapping[str, str]) -> dict[tuple[str, ...], tuple[str, Any]]:
    """``BRIDGE_SOURCE__TABLE=x`` -> ``{("source", "table"): ("BRIDGE_SOURCE__TABLE", "x")}``.

    Values are parsed as YAML scalars so numbers and booleans arrive typed.
    """
    found: dict[tuple[str, ...], tuple[str, Any]] = {}
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in _CLI_VARIABLES:
            continue
        keys = tuple(part.lower() for part in var[len(ENV_PREFIX) :].split("__"))
        if not all(keys):
            raise ConfigError(f"{var}: empty key in environment override")
        try:
            value = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            value = raw
        found[keys] = (var, value)
    return found


def _set_path(data: dict[str, Any], keys: tuple[str, ...], value: Any, var: str) -> None:
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise ConfigError(f"{var}: cannot set a key inside {where}, which is not a mapping")
        node = child
    node[keys[-1]] = value


def _describe(path: Path, exc: ValidationError, origins: dict[tuple[str, ...], str]) -> str:
    lines = [f"{path}: invalid configuration"]
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(top level)"
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        got = "" if kind in {"missing", "extra_forbidden"} else f" (got {error['input']!r})"
        origin = origins.get(tuple(p.lower() for p in loc))
        via = f" [from {origin}]" if origin else ""
        lines.append(f"  {key}: {message}{got}{via}")
    return "\n".join(lines)


def resolved_view(config: BaseModel) -> dict[str, Any]:
    """The configuration as ``config check`` prints it: defaults filled in, secrets masked."""
    masked: dict[str, Any] = _mask(config.model_dump(mode="json"), config)
    return masked


def _mask(value: Any, model: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            attr = getattr(model, key, None) if isinstance(model, BaseModel) else None
            if isinstance(attr, SecretStr) or (
                isinstance(key, str) and any(word in key.lower() for word in _SECRET_WORDS)
            ):
                out[key] = _MASK if item is not None else None
            else:
                out[key] = _mask(item, attr)
        return out
    if isinstance(value, list):
        return [_mask(item, None) for item in value]
    return value
