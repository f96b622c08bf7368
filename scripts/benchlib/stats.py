"""Percentiles and summaries of latency samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summary(latencies_ms: Sequence[float]) -> dict[str, float | int]:
    if not latencies_ms:
        return {"n": 0}
    values = np.asarray(latencies_ms, dtype=float)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "n": len(values),
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
        "max_ms": round(float(values.max()), 1),
        "mean_ms": round(float(values.mean()), 1),
    }
