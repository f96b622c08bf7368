"""The configuration contract: one YAML file, every key overridable by ``BRIDGE_...`` variables.

Unknown keys are rejected everywhere (``extra="forbid"``): a misspelt key that is silently
ignored is a setting that silently does not apply.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bridge.config.durations import Duration
from bridge.core.positions import InitialPosition
from bridge.filters import FilterConfig

_APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class BootstrapConfig(_Section):
    """The table's snapshot that ``start: bootstrap | auto`` takes before streaming, for a
    processor that takes snapshots (``kafka``, or a custom one implementing ``snapshot``)."""

    segments: int = Field(default=8, ge=1, le=1000)
    """Scan segments, each a lease: up to this many workers scan at once."""
    margin: Duration = timedelta(seconds=60)
    """Changes from this long before the scan's start are read from the stream again (clock
    skew, and DynamoDB's creation times rounded to the second)."""
    page_items: int | None = Field(default=None, ge=1)
    """Items per Scan page (the Scan's ``Limit``); default DynamoDB's 1 MB pages."""


class SourceConfig(_Section):
    """Where the changes come from."""

    tables: list[str] | None = Field(default=None, min_length=1)
    """Instead of ``table``: several tables, by name or glob pattern (``orders-*``), read by one
    application. Resolved at start and again every ``coordination.shard_sync_interval``."""
    table: str | None = Field(default=None, min_length=3, max_length=255)
    """The DynamoDB table whose stream is read."""
    region: str = "us-east-1"
    endpoint_url: str | None = None
    """Set to ``http://127.0.0.1:PORT`` to use ``bridge local``; ``null`` means AWS."""
    stream_arn: str | None = None
    """Read this stream instead of the table's latest one."""
    start: Literal["trim_horizon", "latest", "bootstrap", "auto"] = "trim_horizon"
    """Where a shard with no checkpoint starts."""
    on_trimmed: Literal["fail", "resume", "rebootstrap"] = "fail"
    """What to do when records were trimmed before they were read: stop (``fail``), read on
    with the loss counted (``resume``), or take a fresh snapshot of the table so that the
    destination equals it again (``rebootstrap``; a processor that takes snapshots, or the
    SQLite processor, which scans into its file)."""
    bootstrap: BootstrapConfig = BootstrapConfig()
    retention: Duration = timedelta(hours=24)
    """The stream's retention (24 hours on AWS): a snapshot scan must finish well inside it."""
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    """Static credentials; leave unset to use the usual AWS credential chain."""

    @field_validator("table")
    @classmethod
    def _one_kind_of_table(cls, table: str | None, info: ValidationInfo) -> str | None:
        tables = info.data.get("tables")
        if table is None and tables is None:
            raise PydanticCustomError("missing", "Field required")
        if table is not None and tables is not None:
            raise ValueError("give source.table (one table) or source.tables (several), not both")
        return table

    @model_validator(mode="after")
    def _one_stream(self) -> SourceConfig:
        if self.tables is not None and self.stream_arn is not None:
            raise ValueError("source.stream_arn names one table's stream: use source.table")
        return self

    @property
    def name(self) -> str:
        """The table of a single-table source."""
        if self.table is None:
            raise ValueError("source.tables names several tables; this needs one (source.table)")
        return self.table

    def for_table(self, table: str, stream_arn: str | None = None) -> SourceConfig:
        """This source narrowed to one of its tables."""
        return self.model_copy(update={"table": table, "tables": None, "stream_arn": stream_arn})

    @property
    def initial_position(self) -> InitialPosition:
        """Where the stream side of a shard with no checkpoint starts: ``bootstrap`` and
        ``auto`` scan the table first, then read every shard from its oldest record."""
        return "latest" if self.start == "latest" else "trim_horizon"


class CoordinationConfig(_Section):
    """How workers share the stream's shards."""

    lease_duration: Duration = timedelta(seconds=10)
    """A lease whose counter has not moved for this long (on the observer's clock) is expired."""
    renew_interval: Duration | None = None
    """How often a worker renews its leases; default a third of ``lease_duration``."""
    take_interval: Duration = timedelta(seconds=2)
    """How often a worker looks for free, expired or stealable leases."""
    max_leases_per_worker: int = Field(default=0, ge=0)
    """0 means no cap."""
    max_steals_per_cycle: int = Field(default=5, ge=0)
    """Leases a worker below its fair share may steal in one take cycle (never more than it
    lacks, and only from workers above the share). 5 brings a newcomer to a share of 20 in 4
    cycles where 1 (KCL's default) takes 19, moving no more leases; 0 disables stealing."""
    shard_sync_interval: Duration = timedelta(seconds=60)
    """How often the leader lists the stream's shards; a shard end also triggers a sync."""
    drain_timeout: Duration = timedelta(seconds=30)
    """On SIGTERM, how long the batches in hand may take to finish (a destination that is down
    is waited out only this long); those still unfinished are abandoned, not checkpointed, and
    delivered again by the next owner. Keep it below the pod's termination grace period."""
    lease_table: str | None = None
    """Defaults to ``<app>-leases``."""
    liveness: Literal["lease", "heartbeat"] = "lease"
    """How the others know a worker still holds its leases. ``lease``: each lease's counter,
    renewed every renew interval (KCL's way: lease-table writes grow with the leases held,
    and KCL workers, during a takeover or a rollback, understand them). ``heartbeat``: the
    worker's heartbeat row alone, one write per renew interval whatever it holds; the lease
    counter still fences every write. For short leases (``lease_duration: 3s``) with fast
    failover; every worker of the app must use it, and no KCL worker may share the table."""

    @model_validator(mode="after")
    def _renew_inside_lease(self) -> CoordinationConfig:
        if self.renew_interval is not None and self.renew_interval >= self.lease_duration:
            raise ValueError(
                "coordination.renew_interval must be shorter than coordination.lease_duration"
            )
        return self

    @property
    def effective_renew_interval(self) -> timedelta:
        return self.renew_interval or self.lease_duration / 3

    @property
    def observation_slack(self) -> float:
        """Seconds an owner gives up of each lease duration, so that the others may credit a
        change they read to the read before (``ExpiryTracker``): failover then takes about
        ``lease_duration``, not that plus a take interval. At most a take interval (the
        spacing of reads it stands for) and a third of the lease, and never so much that an
        owner's remaining time holds fewer than two renewals."""
        lease = self.lease_duration.total_seconds()
        renew = self.effective_renew_interval.total_seconds()
        return max(0.0, min(self.take_interval.total_seconds(), lease / 3, lease - 2 * renew))


class PollingConfig(_Section):
    """How often shards are read: at once while records flow, backing off when idle."""

    interval: Duration = timedelta(milliseconds=250)
    idle_interval: Duration = timedelta(seconds=1)
    max_records: int = Field(default=1000, ge=1, le=1000)

    @model_validator(mode="after")
    def _idle_not_below_interval(self) -> PollingConfig:
        if self.idle_interval < self.interval:
            raise ValueError("polling.idle_interval must not be shorter than polling.interval")
        return self


class DeadLetterConfig(_Section):
    """Where ``on_error: dead_letter`` puts the records given up on: a file (the default; see
    ``processor.dead_letter_path``), a Kafka topic or an S3 prefix. Written before the
    checkpoint passes the record; a destination that is down holds the shard."""

    kind: Literal["file", "kafka", "s3"] = "file"
    path: Path | None = None
    """``file``: the JSON-lines file; default ``processor.dead_letter_path``."""
    bootstrap_servers: str | list[str] | None = None
    """``kafka``: the brokers."""
    topic: str | None = None
    """``kafka``: the topic; default ``<app>-dead-letters``."""
    producer: dict[str, Any] = Field(default_factory=dict)
    """``kafka``: extra librdkafka settings (security, compression)."""
    bucket: str | None = None
    """``s3``: the bucket."""
    prefix: str = "dead-letters/"
    """``s3``: key prefix; objects are ``<prefix><app>/<shard>/<sequence number>.json``."""
    region: str | None = None
    endpoint_url: str | None = None
    """``s3``: an S3-compatible store; null means AWS."""

    @model_validator(mode="after")
    def _complete(self) -> DeadLetterConfig:
        if self.kind == "kafka" and not self.bootstrap_servers:
            raise ValueError("kind kafka needs bootstrap_servers")
        if self.kind == "s3" and not self.bucket:
            raise ValueError("kind s3 needs bucket")
        return self


class ProcessorConfig(_Section):
    """What is done with each change."""

    kind: str = "log"
    """``log``, ``sqlite``, ``kafka`` or ``module.path:ClassName``."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Passed to the processor; each processor validates its own."""
    max_attempts: int = Field(default=3, ge=1)
    """How often a failing batch is tried before ``on_error`` applies."""
    on_error: Literal["stop", "dead_letter"] = "stop"
    dead_letter_path: Path | None = None
    """JSON-lines file for ``on_error: dead_letter``; default ``<app>-dead-letter.jsonl``."""
    parallelism: int = Field(default=1, ge=1, le=10)
    """Lanes per shard: a batch's records are split by item key and handled this many at a
    time, in order per item (Lambda's ``ParallelizationFactor``)."""
    dead_letter: DeadLetterConfig | None = None
    """Where ``on_error: dead_letter`` writes (file, kafka, s3); default the file."""
    bisect_on_error: bool = False
    """A batch that keeps failing is split in halves, and each half tried, to find the
    record(s) at fault faster than one at a time (Lambda's ``BisectBatchOnFunctionError``)."""
    max_record_age: Duration | None = None
    """A failing record older than this goes to the dead letters at once instead of being
    tried again (Lambda's ``MaximumRecordAgeInSeconds``); needs ``on_error: dead_letter``."""

    @model_validator(mode="after")
    def _age_has_a_destination(self) -> ProcessorConfig:
        if self.max_record_age is not None and self.on_error != "dead_letter":
            raise ValueError("max_record_age needs on_error: dead_letter (where old records go)")
        return self

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind in {"log", "sqlite", "kafka"} or re.fullmatch(r"[\w.]+:[A-Za-z_]\w*", kind):
            return kind
        raise ValueError("expected log, sqlite, kafka or module.path:ClassName")


class MetricsConfig(_Section):
    enabled: bool = True
    port: int = Field(default=9400, ge=0, le=65535)
    """0 picks a free port (useful for tests)."""
    roundtrip_attribute: str | None = None
    """Item attribute holding the write time (epoch ms) for ``bridge_roundtrip_seconds``."""


class BridgeConfig(_Section):
    app: str
    """Names the application; the lease table is ``<app>-leases``."""
    worker_id: str | None = None
    """Defaults to ``<host>-<pid>``."""
    source: SourceConfig
    coordination: CoordinationConfig = CoordinationConfig()
    polling: PollingConfig = PollingConfig()
    processor: ProcessorConfig = ProcessorConfig()
    metrics: MetricsConfig = MetricsConfig()
    ready_lag: Duration = timedelta(seconds=2)
    """A replica is ready only while its lag is below this."""
    filter: FilterConfig | None = None
    """Which changes reach the processor (``bridge.filters``); the others still move the
    checkpoint, counted in ``bridge_records_filtered_total``."""

    @field_validator("app")
    @classmethod
    def _app_names_a_table(cls, app: str) -> str:
        if not _APP_NAME.match(app):
            raise ValueError("expected letters, digits, '_', '-' or '.' (it names a table)")
        return app

    @property
    def lease_table(self) -> str:
        return self.coordination.lease_table or f"{self.app}-leases"

    @property
    def lock_table(self) -> str:
        """Holds the shard-sync leader's lock and the workers' heartbeat rows."""
        return f"{self.lease_table}-coordination"
