"""docs/operations.md names only metrics a worker really serves, and lists every one of them."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.metrics import Metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def served() -> tuple[set[str], set[str]]:
    """(metric families, sample names) of a fresh worker registry, as /metrics shows them."""
    families: set[str] = set()
    samples: set[str] = set()
    for family in Metrics("app", "table").registry.collect():
        names = {sample.name for sample in family.samples if not sample.name.endswith("_created")}
        samples |= names
        # A counter family is named without ``_total``; people (and DESIGN.md) use the sample.
        families.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return families, samples


def test_every_metric_named_in_the_alerting_section_is_served() -> None:
    families, samples = served()
    named = set(re.findall(r"\bbridge_[a-z_]+", section("Metrics and alerting")))
    assert named, "no metric names found: did the section move?"
    unknown = named - samples - families
    assert not unknown, f"documented but not served: {sorted(unknown)}"


def test_the_metrics_table_lists_every_served_metric() -> None:
    families, _ = served()
    listed = set(re.findall(r"^\| `(bridge_[a-z_]+)` \|", section("Metrics and alerting"), re.M))
    assert listed == families, (
        f"missing from the table: {sorted(families - listed)}; "
        f"not served: {sorted(listed - families)}"
    )
