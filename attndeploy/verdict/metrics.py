"""Reduced-precision error metrics: cosine, SQNR (dB), max abs and a high percentile of the relative error.

Relative error of one element: |got - ref| / max(|ref|, REL_FLOOR * rms(ref)): near-zero
reference values would otherwise make any rounding look infinitely large. `REL_PERCENTILE`
(99) of it is reported, the max being dominated by such elements. Cosine and SQNR are
the budgets' measures: for small errors 1 - cosine ~ 1 / (2 * SNR), so cosine 0.9999 is
SQNR ~37 dB and cosine 0.99 ~17 dB (`sqnr_floor`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

REL_FLOOR = 1e-2
REL_PERCENTILE = 99.0


@dataclass
class ErrorStats:
    """One tensor's error against its reference (float64 arithmetic); NaN cosine/SQNR when a side is not finite."""

    cosine: float = 1.0
    sqnr_db: float = math.inf
    max_abs: float = 0.0
    p99_rel: float = 0.0
    finite: bool = True
    max_ref: float = 0.0        # largest |reference| (how far from fp16's 65504)

    def worse(self, other: ErrorStats) -> ErrorStats:
        """The element-wise worst of two (over shapes / probes)."""
        def low(a: float, b: float) -> float:
            return math.nan if math.isnan(a) or math.isnan(b) else min(a, b)
        return ErrorStats(low(self.cosine, other.cosine), low(self.sqnr_db, other.sqnr_db),
                          max(self.max_abs, other.max_abs), max(self.p99_rel, other.p99_rel),
                          self.finite and other.finite, max(self.max_ref, other.max_ref))

    def to_dict(self) -> dict[str, float | bool | None]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) and k != "sqnr_db" else v)
                for k, v in asdict(self).items()}


def error_stats(ref: np.ndarray, got: np.ndarray, exact: bool = True) -> ErrorStats:
    """Metrics of `got` against `ref` (same shape, any rank).

    `exact`: float64 arithmetic (cosines to ~1e-15); otherwise float32 with float32 BLAS
    sums (~1e-7: enough to rank and budget modules, several times faster on large maps).
    """
    dtype = np.float64 if exact else np.float32
    r: np.ndarray = np.asarray(ref).astype(dtype, copy=False).ravel()
    g: np.ndarray = np.asarray(got).astype(dtype, copy=False).ravel()
    finite = bool(np.isfinite(g).all() and np.isfinite(r).all())
    max_ref = float(np.abs(r[np.isfinite(r)]).max(initial=0.0))
    if not finite:
        return ErrorStats(math.nan, math.nan, math.inf, math.inf, False, max_ref)
    diff: np.ndarray = np.subtract(g, r)
    signal, power, noise = float(np.dot(r, r)), float(np.dot(g, g)), float(np.dot(diff, diff))
    norms = math.sqrt(signal * power)
    cosine = float(np.dot(r, g)) / norms if norms > 0 else float(np.array_equal(r, g))
    sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    rms = math.sqrt(signal / max(r.size, 1))
    floor = max(REL_FLOOR * rms, float(np.finfo(np.float32).tiny))
    rel: np.ndarray = np.abs(diff) / np.maximum(np.abs(r), floor)
    k = min(rel.size - 1, int(math.ceil(REL_PERCENTILE / 100 * rel.size)) - 1) if rel.size else 0
    p99 = float(np.partition(rel, k)[k]) if rel.size else 0.0
    return ErrorStats(min(cosine, 1.0), sqnr, float(np.abs(diff).max(initial=0.0)), p99, True, max_ref)


def sqnr_floor(min_cosine: float) -> float:
    """The SQNR (dB) that corresponds to a cosine budget for small errors: 10 log10(1 / (2 (1 - cos)))."""
    return 10 * math.log10(1 / (2 * max(1 - min_cosine, 1e-12)))


def cosine_of(values: list[float]) -> float:
    """min over `values`, NaN (a non-finite comparison) winning."""
    return math.nan if any(math.isnan(v) for v in values) else min(values, default=1.0)


__all__ = ["REL_FLOOR", "REL_PERCENTILE", "ErrorStats", "cosine_of", "error_stats", "sqnr_floor"]
