"""One filter language for ``bridge run`` (``filter:`` in bridge.yaml: which changes reach the
processor) and ``bridge replica`` (``filter:`` in replica.yaml: which items the edge keeps).

A filter is a list of conditions that must all hold. Each names an attribute by a dotted path:
``new.status`` (the image after the change), ``old.status`` (before it), ``keys.pk``; a path
that starts with none of these reads the new image (``status`` is ``new.status``). A condition
is one of ``equals``, ``in``, ``exists``, ``prefix`` (text) or a numeric range (``gt``,
``gte``, ``lt``, ``lte``). Besides conditions, ``events`` keeps some event names (``bridge
run`` only) and ``key_prefix`` some partition keys. Numbers compare by value whether they
come as numbers or as the exact text the envelope writes beyond 2^53 (``"129.90"``); YAML's
``true`` is not the number 1. Pure: values in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_MISSING = object()
_IMAGES = ("new", "old", "keys")
EventName = Literal["INSERT", "MODIFY", "REMOVE"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class KeyPrefixFilter(_Section):
    attribute: str = Field(min_length=1)
    """A key attribute (usually the partition key)."""
    prefix: str = Field(min_length=1)


class Condition(_Section):
    """One test of one attribute; give exactly one kind of test (a range may have two ends)."""

    attribute: str = Field(min_length=1)
    """A dotted path: ``new.status``, ``old.status``, ``keys.pk``, or ``status`` (new)."""
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    exists: bool | None = None
    prefix: str | None = None
    gt: Decimal | None = None
    gte: Decimal | None = None
    lt: Decimal | None = None
    lte: Decimal | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        ranged = any(v is not None for v in (self.gt, self.gte, self.lt, self.lte))
        kinds = [
            "equals" in self.model_fields_set,
            self.in_ is not None,
            self.exists is not None,
            self.prefix is not None,
            ranged,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                f"{self.attribute}: give one of equals, in, exists, prefix, or a range "
                "(gt, gte, lt, lte)"
            )
        return self


class FilterConfig(_Section):
    """Keep only some changes (``bridge run``) or items (``bridge replica``): every condition
    given must hold."""

    events: list[EventName] | None = Field(default=None, min_length=1)
    """Keep these event names only (``bridge run``)."""
    key_prefix: KeyPrefixFilter | None = None
    """Keep items whose key attribute's text starts with ``prefix``."""
    attribute: str | None = Field(default=None, min_length=1)
    """One condition in short: an attribute path for ``equals`` or ``in``."""
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    where: list[Condition] = Field(default_factory=list)
    """Conditions that must all hold."""

    @model_validator(mode="after")
    def _complete(self) -> FilterConfig:
        has_value = "equals" in self.model_fields_set or self.in_ is not None
        if self.attribute is None and has_value:
            raise ValueError("equals/in need filter.attribute (the item path to compare)")
        if self.attribute is not None and not has_value:
            raise ValueError("filter.attribute needs equals or in")
        if "equals" in self.model_fields_set and self.in_ is not None:
            raise ValueError("give filter.equals or filter.in, not both")
        if not (self.events or self.key_prefix or self.attribute or self.where):
            raise ValueError("an empty filter: give events, key_prefix, attribute or where")
        return self

    def conditions(self) -> list[Condition]:
        """Every condition, the short ``attribute`` one first."""
        short: list[Condition] = []
        if self.attribute is not None:
            test = {"in": self.in_} if self.in_ is not None else {"equals": self.equals}
            short.append(Condition.model_validate({"attribute": self.attribute, **test}))
        return short + list(self.where)


@dataclass(frozen=True)
class _Test:
    image: str
    path: tuple[str, ...]
    condition: Condition

    def holds(self, images: Mapping[str, Any]) -> bool:
        value = _lookup(images.get(self.image), self.path)
        c = self.condition
        if c.exists is not None:
            return (value is not _MISSING) is c.exists
        if value is _MISSING:
            return False
        if c.in_ is not None:
            return any(_same(value, wanted) for wanted in c.in_)
        if c.prefix is not None:
            return isinstance(value, str) and value.startswith(c.prefix)
        if "equals" in c.model_fields_set:
            return _same(value, c.equals)
        number = _number(value)
        if number is None:
            return False
        return all(
            (bound is None or test(number, bound))
            for bound, test in (
                (c.gt, Decimal.__gt__),
                (c.gte, Decimal.__ge__),
                (c.lt, Decimal.__lt__),
                (c.lte, Decimal.__le__),
            )
        )


@dataclass(frozen=True)
class ChangeFilter:
    """``keeps(event, keys, new, old)``: the compiled filter; no filter keeps everything."""

    events: frozenset[str] | None = None
    key_attribute: str | None = None
    key_prefix: str = ""
    tests: tuple[_Test, ...] = ()

    @classmethod
    def from_config(cls, config: FilterConfig | None) -> ChangeFilter:
        if config is None:
            return cls()
        tests = []
        for condition in config.conditions():
            parts = tuple(condition.attribute.split("."))
            image, path = (parts[0], parts[1:]) if parts[0] in _IMAGES else ("new", parts)
            tests.append(_Test(image, path, condition))
        prefix = config.key_prefix
        return cls(
            events=frozenset(config.events) if config.events else None,
            key_attribute=prefix.attribute if prefix else None,
            key_prefix=prefix.prefix if prefix else "",
            tests=tuple(tests),
        )

    @property
    def keeps_all(self) -> bool:
        return self.events is None and self.key_attribute is None and not self.tests

    def keeps(
        self,
        event: str | None,
        keys: Mapping[str, Any],
        new: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None = None,
    ) -> bool:
        if self.events is not None and event is not None and event not in self.events:
            return False
        if self.key_attribute is not None:
            value = keys.get(self.key_attribute, (new or {}).get(self.key_attribute, _MISSING))
            if value is _MISSING or not _text(value).startswith(self.key_prefix):
                return False
        images = {"new": new, "old": old, "keys": keys}
        return all(test.holds(images) for test in self.tests)


def _lookup(item: Any, path: Sequence[str]) -> Any:
    node: Any = item
    if node is None:
        return _MISSING
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _number(value: Any) -> Decimal | None:
    """A number's value, whether a JSON or Python number or the envelope's exact text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _same(value: Any, wanted: Any) -> bool:
    # YAML's true is not the number 1, though Python says True == 1.
    if isinstance(value, bool) or isinstance(wanted, bool):
        return value is wanted
    if isinstance(wanted, int | float | Decimal):
        number = _number(value)
        return number is not None and number == _number(wanted)
    if isinstance(value, set | frozenset) and isinstance(wanted, list):
        return value == set(wanted)
    return bool(value == wanted)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


KEEP_ALL = ChangeFilter()
"""No filter: every change is kept."""
