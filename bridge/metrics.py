"""Prometheus metrics with the names DESIGN.md promises, on a registry per worker.

A registry per worker (not the global one) lets several workers live in one process, as they do
in tests and benchmarks, without their counters mixing. Every series carries ``app`` and
``table``; they are bound once here so callers just ``inc()``. The dead-letter counter also
says where the records went and why (``destination``, ``reason``), so an alert can tell a
poison record from records aged out during an outage.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LABELS = ("app", "table")
_ROUNDTRIP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _Families:
    """The metric families of one registry, each made once and bound per table."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._made: dict[str, Any] = {}

    def get(
        self, kind: type[Any], name: str, doc: str, labels: tuple[str, ...] = (), **options: Any
    ) -> Any:
        family = self._made.get(name)
        if family is None:
            family = kind(name, doc, _LABELS + labels, registry=self.registry, **options)
            self._made[name] = family
        return family


class Metrics:
    def __init__(self, app: str, table: str, *, _families: _Families | None = None) -> None:
        self._families = _families or _Families()
        self.registry = self._families.registry
        self._values = (app, table)
        g, c = self._gauge, self._counter
        self.shards_active = g("bridge_shards_active", "Shards this worker is reading now.")
        self.leases_owned = g("bridge_leases_owned", "Leases this worker holds.")
        self.lag_ms = g("bridge_lag_ms", "Age of the oldest change not yet processed (watermark).")
        self.records_consumed = c("bridge_records_consumed_total", "Records read from the stream.")
        self.records_processed = c(
            "bridge_records_processed_total", "Records the processor finished."
        )
        self.errors_transient = c(
            "bridge_errors_transient_total", "Retried errors (throttling, timeouts, 5xx)."
        )
        self.errors_fatal = c("bridge_errors_fatal_total", "Errors that stopped a shard.")
        self.records_lost = c(
            "bridge_records_lost_total", "Records trimmed before they were read: must stay 0."
        )
        self.getrecords_calls = c(
            "bridge_getrecords_calls_total", "GetRecords calls (the cost of polling)."
        )
        self.describe_stream_calls = c("bridge_describestream_calls_total", "DescribeStream calls.")
        self.lease_takes = c("bridge_lease_takes_total", "Free or expired leases taken.")
        self.lease_steals = c("bridge_lease_steals_total", "Leases stolen to rebalance.")
        self.lease_losses = c("bridge_lease_losses_total", "Leases lost to another worker.")
        self.checkpoint_writes = c(
            "bridge_checkpoint_writes_total", "Checkpoints written to the lease table."
        )
        self.lanes_busy = g(
            "bridge_lanes_busy", "Lanes delivering a part of a batch now (processor.parallelism)."
        )
        self._dead_letters()  # the family is served (empty) from the start
        self._units("read")
        self._units("write")
        self.records_filtered = c(
            "bridge_records_filtered_total", "Records the filter kept from the processor."
        )
        self.roundtrip = self._families.get(
            Histogram,
            "bridge_roundtrip_seconds",
            "From the item's write-time attribute to processed.",
            buckets=_ROUNDTRIP_BUCKETS,
        ).labels(*self._values)

    def of_table(self, table: str) -> Metrics:
        """The same metrics, in the same registry, for the series of another source table
        (an application reading several: ``source.tables``)."""
        if table == self._values[1]:
            return self
        return Metrics(self._values[0], table, _families=self._families)

    def dead_letter(self, destination: str, reason: str) -> Any:
        """The counter of records given up to ``destination`` (file, kafka, s3) for ``reason``
        (max_attempts, max_record_age, reported)."""
        return self._dead_letters().labels(*self._values, destination, reason)

    def lease_table_units(
        self, dynamodb_table: str, operation: str, read: float, write: float
    ) -> None:
        """Add the capacity units DynamoDB reported for one call to the lease or coordination
        table (``bridge.leases.units``)."""
        for kind, units in (("read", read), ("write", write)):
            if units:
                self._units(kind).labels(*self._values, dynamodb_table, operation).inc(units)

    def _units(self, kind: str) -> Any:
        return self._families.get(
            Counter,
            f"bridge_lease_table_{kind}_units_total",
            f"{kind.capitalize()} capacity units of the lease and coordination tables, as"
            " DynamoDB billed them, by table and operation.",
            ("dynamodb_table", "operation"),
        )

    def _dead_letters(self) -> Any:
        return self._families.get(
            Counter,
            "bridge_dead_letters_total",
            "Records sent to the dead letters, by destination and reason.",
            ("destination", "reason"),
        )

    def _counter(self, name: str, doc: str) -> Any:
        return self._families.get(Counter, name, doc).labels(*self._values)

    def _gauge(self, name: str, doc: str) -> Any:
        return self._families.get(Gauge, name, doc).labels(*self._values)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a series, for status output and tests: the sum over the labels
        not given (a family with labels beyond ``app`` and ``table``)."""
        wanted = dict(zip(_LABELS, self._values, strict=True)) | labels
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and wanted.items() <= sample.labels.items():
                    total += sample.value
        return total
