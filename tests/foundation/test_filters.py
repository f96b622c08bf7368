"""The filter language shared by ``bridge run`` and ``bridge replica``. Pure."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.filters import ChangeFilter, FilterConfig


def compiled(**config: Any) -> ChangeFilter:
    return ChangeFilter.from_config(FilterConfig.model_validate(config))


def test_events_and_a_condition_on_the_new_image() -> None:
    paid = compiled(
        events=["INSERT", "MODIFY"], where=[{"attribute": "new.status", "equals": "PAID"}]
    )
    keys = {"pk": "o1"}
    assert paid.keeps("INSERT", keys, {"pk": "o1", "status": "PAID"})
    assert paid.keeps("MODIFY", keys, {"status": "PAID"}, {"status": "NEW"})
    assert not paid.keeps("MODIFY", keys, {"status": "NEW"}, {"status": "PAID"})
    assert not paid.keeps("REMOVE", keys, None, {"status": "PAID"})  # not an event kept
    assert ChangeFilter().keeps_all and not paid.keeps_all


@pytest.mark.parametrize(
    ("condition", "kept", "dropped"),
    [
        ({"attribute": "old.status", "exists": True}, {"old": {"status": "x"}}, {"old": {}}),
        ({"attribute": "new.gone", "exists": False}, {"new": {}}, {"new": {"gone": 1}}),
        ({"attribute": "sku", "prefix": "A-"}, {"new": {"sku": "A-1"}}, {"new": {"sku": "B-1"}}),
        (
            {"attribute": "new.region", "in": ["eu", 3]},
            {"new": {"region": 3}},
            {"new": {"region": "us"}},
        ),
        ({"attribute": "keys.sk", "gte": 10, "lt": 20}, {"keys": {"sk": 10}}, {"keys": {"sk": 20}}),
        # numbers by value, as Python holds them or as the envelope's exact text
        (
            {"attribute": "total", "gt": "129.8"},
            {"new": {"total": "129.90"}},
            {"new": {"total": "9"}},
        ),
        (
            {"attribute": "total", "equals": 129.9},
            {"new": {"total": Decimal("129.90")}},
            {"new": {"total": "x"}},
        ),
        (
            {"attribute": "a.b.c", "equals": None},
            {"new": {"a": {"b": {"c": None}}}},
            {"new": {"a": {"b": 1}}},
        ),
        ({"attribute": "flag", "equals": True}, {"new": {"flag": True}}, {"new": {"flag": 1}}),
        (
            {"attribute": "tags", "equals": ["a", "b"]},
            {"new": {"tags": {"b", "a"}}},
            {"new": {"tags": {"a"}}},
        ),
    ],
)
def test_each_kind_of_condition(
    condition: dict[str, Any], kept: dict[str, Any], dropped: dict[str, Any]
) -> None:
    rule = compiled(where=[condition])

    def keeps(images: dict[str, Any]) -> bool:
        return rule.keeps(
            "MODIFY", images.get("keys", {}), images.get("new", {}), images.get("old")
        )

    assert keeps(kept) and not keeps(dropped)


def test_the_replicas_short_form_and_key_prefix_still_read_the_same() -> None:
    rule = compiled(
        key_prefix={"attribute": "pk", "prefix": "t1#"}, attribute="tenant", equals="t1"
    )
    assert rule.keeps(None, {"pk": "t1#9"}, {"tenant": "t1"})
    assert not rule.keeps(None, {"pk": "t2#9"}, {"tenant": "t1"})
    assert not rule.keeps(None, {"pk": "t1#9"}, {"tenant": "t2"})


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "an empty filter"),
        ({"where": [{"attribute": "x"}]}, "give one of equals, in, exists, prefix"),
        ({"where": [{"attribute": "x", "equals": 1, "prefix": "a"}]}, "give one of"),
        ({"attribute": "x"}, "needs equals or in"),
        ({"events": ["UPSERT"]}, "INSERT"),
    ],
)
def test_a_filter_that_cannot_mean_anything_is_refused(
    config: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        FilterConfig.model_validate(config)
