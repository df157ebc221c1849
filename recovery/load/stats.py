"""Latency percentiles and request tallies (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of `values` (None when there are none).

    Nearest rank, not interpolation: the figure is always a latency that was really observed.
    """
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


def summarize_latencies(latencies_ms: Sequence[float]) -> LatencySummary:
    return LatencySummary(
        count=len(latencies_ms),
        p50_ms=percentile(latencies_ms, 50),
        p95_ms=percentile(latencies_ms, 95),
        max_ms=max(latencies_ms) if latencies_ms else None,
    )
