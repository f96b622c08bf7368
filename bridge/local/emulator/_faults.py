"""Fault injection: throttling, server errors and latency on the calls consumers poll with.

By default faults hit GetRecords and DescribeStream, the calls a real consumer sees throttled
or failing; another set of operations (DynamoDB's item calls, for the lease table) can be given
with the error its throttling answers. A base rate comes from the settings; a burst (the next N
calls, or a rate for a while) is switched on through the control API, so a test can provoke
exactly the failure it studies.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from bridge.local.emulator._errors import InternalServerError, LimitExceededError, StreamsError

FAULTY_OPERATIONS = frozenset({"GetRecords", "DescribeStream"})
FAULT_KINDS = ("throttle", "error")


@dataclass(frozen=True)
class FaultSettings:
    throttle_rate: float = 0.0
    """Fraction of GetRecords/DescribeStream calls answered LimitExceededException."""

    error_rate: float = 0.0
    """Fraction answered InternalServerError (HTTP 500 or 503)."""

    latency_seconds: float = 0.0
    """Extra delay before every Streams call is answered."""

    seed: int | None = None
    """Seed for the random choices, for repeatable runs."""

    def __post_init__(self) -> None:
        for name in ("throttle_rate", "error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must not be negative")


@dataclass
class _Burst:
    kind: str
    remaining: int  # calls left, or -1 when the burst is bounded by time
    rate: float
    until: float


def _limit_exceeded() -> StreamsError:
    return LimitExceededError("Rate exceeded for shard (injected by bridge local)")


class FaultInjector:
    def __init__(
        self,
        settings: FaultSettings | None = None,
        *,
        operations: frozenset[str] = FAULTY_OPERATIONS,
        throttled: Callable[[], StreamsError] = _limit_exceeded,
    ) -> None:
        self.settings = settings or FaultSettings()
        self.operations = operations
        self._throttled = throttled
        self._rng = random.Random(self.settings.seed)
        self._burst: _Burst | None = None
        self._lock = threading.Lock()
        self.injected = 0

    @property
    def latency(self) -> float:
        return self.settings.latency_seconds

    def burst(
        self,
        now: float,
        *,
        kind: str = "throttle",
        count: int = 0,
        rate: float = 1.0,
        seconds: float = 0.0,
    ) -> None:
        """Fail the next ``count`` calls, or a ``rate`` of the calls for ``seconds``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if (count > 0) == (seconds > 0):
            raise ValueError("give either count or seconds")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._burst = _Burst(kind, count if count > 0 else -1, rate, now + seconds)

    def reset(self) -> None:
        """Back to how it started: no burst, nothing injected, and the seeded sequence of
        random draws from its beginning, so a suite run after a reset meets the same faults.
        The base rates and latency stay: they are the endpoint's settings, like its shards."""
        with self._lock:
            self._burst = None
            self.injected = 0
            self._rng.seed(self.settings.seed)

    def fault_for(self, operation: str, now: float) -> StreamsError | None:
        """The error this call should fail with, or None to answer it normally."""
        if operation not in self.operations:
            return None
        with self._lock:
            kind = self._choose(now)
            if kind is None:
                return None
            self.injected += 1
            if kind == "throttle":
                return self._throttled()
            status = self._rng.choice((500, 503))
            return InternalServerError("Internal server error (injected by bridge local)", status)

    def bursting(self, now: float) -> bool:
        """Is a burst on? Cheap enough to ask on every request."""
        burst = self._burst
        return burst is not None and (burst.remaining > 0 or burst.until > now)

    def describe(self, now: float) -> dict[str, object]:
        with self._lock:
            burst = self._burst
            active = self.bursting(now)
            return {
                "throttle_rate": self.settings.throttle_rate,
                "error_rate": self.settings.error_rate,
                "latency_seconds": self.settings.latency_seconds,
                "injected": self.injected,
                "burst": None
                if burst is None or not active
                else {
                    "kind": burst.kind,
                    "remaining_calls": max(burst.remaining, 0),
                    "rate": burst.rate,
                    "seconds_left": max(burst.until - now, 0.0),
                },
            }

    def _choose(self, now: float) -> str | None:
        """A burst, while it lasts, replaces the base rates."""
        burst = self._burst
        if burst is not None:
            if burst.remaining > 0:
                burst.remaining -= 1
                if burst.remaining == 0:
                    self._burst = None
                return burst.kind
            if now < burst.until:
                return burst.kind if self._rng.random() < burst.rate else None
            self._burst = None
        return self._random_kind(self.settings.throttle_rate, self.settings.error_rate)

    def _random_kind(self, throttle_rate: float, error_rate: float) -> str | None:
        if not throttle_rate and not error_rate:
            return None
        draw = self._rng.random()
        if draw < throttle_rate:
            return "throttle"
        if draw < throttle_rate + error_rate:
            return "error"
        return None
