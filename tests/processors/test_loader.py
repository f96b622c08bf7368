"""``processor.kind`` to a factory: built-ins, user classes, and clear errors at start."""

from __future__ import annotations

import pytest

from bridge.processors import PerShardFactory
from bridge.processors.loader import ProcessorLoadError, load_factory
from bridge.processors.log import LogProcessor
from tests.processors.sample_processors import Collecting, SharedFactory

MODULE = "tests.processors.sample_processors"


def test_builtin_log_gives_one_processor_per_shard() -> None:
    factory = load_factory("log", {"images": False}, table="orders")
    assert isinstance(factory, PerShardFactory)
    first, second = factory.create("s1"), factory.create("s2")
    assert isinstance(first, LogProcessor) and first is not second
    assert first.images is False


def test_user_processor_gets_its_options_and_the_runtime_values_it_asks_for() -> None:
    factory = load_factory(f"{MODULE}:Collecting", {"prefix": "x"}, table="orders", app="a")
    processor = factory.create("s1")
    assert isinstance(processor, Collecting)
    assert (processor.prefix, processor.table) == ("x", "orders")


def test_user_factory_is_used_as_is() -> None:
    factory = load_factory(f"{MODULE}:SharedFactory", {"size": 3}, app="orders-app", table="t")
    assert isinstance(factory, SharedFactory)
    assert (factory.app, factory.size) == ("orders-app", 3)


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("no_such_module_xyz:Thing", {}, "cannot import no_such_module_xyz"),
        (f"{MODULE}:Missing", {}, "has no 'Missing'"),
        (f"{MODULE}:Unfinished", {}, "does not implement process"),
        (f"{MODULE}:NotAProcessor", {}, "Processor"),
        (f"{MODULE}:NOT_A_CLASS", {}, "Processor"),
        (f"{MODULE}:Collecting", {"colour": "red"}, "bad processor.options"),
    ],
)
def test_a_wrong_kind_or_option_is_a_clear_error_at_start(
    kind: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ProcessorLoadError, match=message) as raised:
        factory = load_factory(kind, options)
        factory.create("s1")
    assert "processor.kind" in str(raised.value)
