"""Which items a replica keeps. Pure: a predicate over an item's keys and image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.replica._config import FilterConfig

_MISSING = object()


@dataclass(frozen=True)
class ItemFilter:
    """``keeps(keys, item)``: every condition given must hold. No conditions keeps all."""

    key_attribute: str | None = None
    key_prefix: str = ""
    path: tuple[str, ...] = ()
    allowed: tuple[Any, ...] = ()

    @classmethod
    def from_config(cls, config: FilterConfig | None) -> ItemFilter:
        if config is None:
            return cls()
        allowed: tuple[Any, ...] = ()
        if config.attribute is not None:
            allowed = tuple(config.in_) if config.in_ is not None else (config.equals,)
        prefix = config.key_prefix
        return cls(
            key_attribute=prefix.attribute if prefix else None,
            key_prefix=prefix.prefix if prefix else "",
            path=tuple(config.attribute.split(".")) if config.attribute else (),
            allowed=allowed,
        )

    @property
    def keeps_all(self) -> bool:
        return self.key_attribute is None and not self.path

    def keeps(self, keys: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
        if self.key_attribute is not None:
            value = keys.get(self.key_attribute, item.get(self.key_attribute, _MISSING))
            if value is _MISSING or not _text(value).startswith(self.key_prefix):
                return False
        if self.path:
            value = _lookup(item, self.path)
            if value is _MISSING or not any(_same(value, want) for want in self.allowed):
                return False
        return True


def _lookup(item: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = item
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _same(value: Any, wanted: Any) -> bool:
    # YAML's true is not the number 1, though Python says True == 1.
    if isinstance(value, bool) or isinstance(wanted, bool):
        return value is wanted
    return bool(value == wanted)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
