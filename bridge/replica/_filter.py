"""Which items a replica keeps: ``bridge.filters``' predicate over an item's keys and image,
without event names (an edge applies every change)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.filters import KEEP_ALL, ChangeFilter, FilterConfig


@dataclass(frozen=True)
class ItemFilter:
    """``keeps(keys, item)``: every condition given must hold. No conditions keeps all."""

    rule: ChangeFilter = KEEP_ALL

    @classmethod
    def from_config(cls, config: FilterConfig | None) -> ItemFilter:
        return cls(ChangeFilter.from_config(config))

    @property
    def keeps_all(self) -> bool:
        return self.rule.keeps_all

    def keeps(self, keys: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
        return self.rule.keeps(None, keys, item)
