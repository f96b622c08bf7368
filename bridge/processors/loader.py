"""Turn ``processor.kind`` into a factory, with an error that says what is wrong at start."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

from bridge.processors.api import PerShardFactory, Processor, ProcessorFactory

BUILTIN = {
    "log": "bridge.processors.log:LogProcessor",
    "sqlite": "bridge.processors.sqlite:SqliteProcessorFactory",
    "kafka": "bridge.processors.kafka:KafkaProcessorFactory",
}


T = TypeVar("T")


class ProcessorLoadError(Exception):
    """``processor.kind`` names something that cannot be loaded or is not a processor."""


def load_factory(kind: str, options: Mapping[str, Any], **runtime: Any) -> ProcessorFactory:
    """Build the factory for ``kind``.

    ``runtime`` carries what the worker knows (table name, app, ...); factories that accept a
    keyword of that name get it, others are not bothered with it.
    """
    target = BUILTIN.get(kind, kind)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProcessorLoadError(
            f"processor.kind {kind!r}: cannot import {module_name}: {exc}"
        ) from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise ProcessorLoadError(f"processor.kind {kind!r}: {module_name} has no {attr!r}")
    factory: ProcessorFactory
    if inspect.isclass(obj) and issubclass(obj, ProcessorFactory):
        factory = _construct(kind, obj, {**_accepted(obj, runtime), **options})
    elif inspect.isclass(obj) and issubclass(obj, Processor):
        if inspect.isabstract(obj):
            missing = ", ".join(sorted(obj.__abstractmethods__))
            raise ProcessorLoadError(f"processor.kind {kind!r}: does not implement {missing}")
        arguments = {**_accepted(obj, runtime), **options}
        _construct(kind, obj, arguments)  # fail now, not on the first shard
        factory = PerShardFactory(obj, arguments)
    else:
        raise ProcessorLoadError(
            f"processor.kind {kind!r}: {attr} is not a subclass of bridge.Processor or "
            "bridge.ProcessorFactory"
        )
    if runtime.get("start") == "bootstrap" and not (
        factory.takes_snapshots() or factory.scans_itself()
    ):
        raise ProcessorLoadError(
            f"source.start: bootstrap needs a processor that takes snapshots, and "
            f"processor.kind {kind!r} does not (a custom processor takes them by implementing "
            "Processor.snapshot); use source.start: trim_horizon or auto"
        )
    if runtime.get("parallelism", 1) > 1 and not factory.takes_lanes():
        raise ProcessorLoadError(
            f"processor.parallelism: processor.kind {kind!r} keeps its own checkpoint with "
            "each batch, which lanes would move past each other's records; use 1"
        )
    if runtime.get("on_trimmed") == "rebootstrap" and not factory.takes_fresh_snapshots():
        raise ProcessorLoadError(
            f"source.on_trimmed: rebootstrap needs a processor that takes snapshots, and "
            f"processor.kind {kind!r} does not (a custom processor takes them by implementing "
            "Processor.snapshot); use source.on_trimmed: fail or resume"
        )
    return factory


def _accepted(cls: type, runtime: Mapping[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls).parameters
    return {name: value for name, value in runtime.items() if name in params}


def _construct(kind: str, cls: type[T], options: Mapping[str, Any]) -> T:
    try:
        return cls(**options)
    except TypeError as exc:
        raise ProcessorLoadError(f"processor.kind {kind!r}: bad processor.options: {exc}") from None
