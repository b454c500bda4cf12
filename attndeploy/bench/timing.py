"""Interleaved timing: every backend of one module and shape is timed round by round.

Round r calls each backend once, starting from backend r mod k, so a slow drift of the
machine (another process, frequency changes) lands on all backends alike instead of on
whichever happened to run last. Times are wall-clock seconds per call
(`time.perf_counter_ns`); each call includes what the backend needs to hand back a
result (CUDA backends synchronize).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

Call = Callable[[], object]


@dataclass(frozen=True)
class TimingStats:
    """Seconds per call over `runs` timed calls (after the warm-up)."""

    runs: int
    median_s: float
    p90_s: float
    min_s: float
    mean_s: float
    stdev_s: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default rule), `q` in [0, 100]."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of no values")
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(samples: list[float]) -> TimingStats:
    """Median, p90, min, mean and standard deviation of `samples` (seconds)."""
    return TimingStats(len(samples), statistics.median(samples), percentile(samples, 90), min(samples),
                       statistics.fmean(samples), statistics.stdev(samples) if len(samples) > 1 else 0.0)


def time_interleaved(calls: Mapping[str, Call], warmup: int, iters: int, max_seconds: float,
                     min_iters: int = 5, clock: Callable[[], int] = time.perf_counter_ns) -> dict[str, list[float]]:
    """Warm each call up `warmup` times, then time up to `iters` interleaved rounds.

    Rounds stop early once `max_seconds` of timed rounds have passed and at least
    `min_iters` rounds are done. Returns seconds per call, per name, in round order.
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    start = clock()
    for r in range(iters):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            t0 = clock()
            calls[name]()
            samples[name].append((clock() - t0) / 1e9)
        if r + 1 >= min_iters and (clock() - start) / 1e9 > max_seconds:
            break
    return samples
