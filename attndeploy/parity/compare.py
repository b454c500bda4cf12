"""The comparison rule: eager PyTorch (the truth) against a backend, per output, folded over shapes.

An element fails if it exceeds both `atol` and `rtol * |reference|` (Polygraphy's rule), or,
where a per-channel atol is given (tolerances scaled by the model's fp32 noise), that atol
too; and always when either side is not finite: a NaN or Inf is never a pass. A non-finite
*reference* is its own finding (the model itself computes NaN/Inf in eager), reported
before any difference. Each output reports max abs, max rel, cosine, SQNR (dB) and where
the worst element sits (shape and index).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from attndeploy.defaults import Tolerance
from attndeploy.shapes import Shape, format_shape

ULPS_RTOL = 1e-6  # ~8 float32 ulps of an element's own value: below it, a per-channel atol never fails it


@dataclass
class OutputParity:
    """One output's comparison, accumulated over every shape checked (`tolerance`: the one applied)."""

    name: str
    tolerance: Tolerance | None = None
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    min_cosine: float = 1.0
    min_sqnr_db: float = math.inf
    worst_shape: str = ""
    worst_index: list[int] = field(default_factory=list)
    failing_elements: int = 0
    failing_shapes: list[str] = field(default_factory=list)
    nonfinite_reference: int = 0
    nonfinite_reference_shapes: list[str] = field(default_factory=list)
    channel_atol: list[float] | None = None    # [min, max] of the per-channel atol, where one was used

    @property
    def passed(self) -> bool:
        return self.failing_elements == 0 and self.nonfinite_reference == 0

    def rule(self, default: Tolerance | None = None) -> str:
        """The tolerance applied, in words: "atol 1e-05 and rtol 0.0001", "atol 2e-07..0.0005 per channel"."""
        tol = self.tolerance or default
        parts = [f"atol {tol.atol:g} and rtol {tol.rtol:g}"] if tol is not None else []
        if self.channel_atol:
            parts.append(f"atol {self.channel_atol[0]:.3g}..{self.channel_atol[1]:.3g} per channel")
        return " or ".join(parts) or "no tolerance"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["tolerance"] = asdict(self.tolerance) if self.tolerance else None
        return {**data, "passed": self.passed}


@dataclass
class ParityReport:
    """Eager vs one backend; `passed` only if every output passed at every shape (and there was one)."""

    backend: str
    tolerance: Tolerance | None            # None: per-channel atols only (noise-scaled)
    shapes: list[str]
    outputs: list[OutputParity]
    notes: list[str] = field(default_factory=list)
    noise: dict | None = None          # the model's measured fp32 noise (parity.noise.Noise.to_dict)
    blame: str = ""                    # where it goes wrong: the first diverging module (attndeploy.localise)

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs)

    @property
    def max_abs_err(self) -> float:
        return max((o.max_abs_err for o in self.outputs), default=0.0)

    @property
    def min_cosine(self) -> float:
        return min((o.min_cosine for o in self.outputs), default=1.0)

    def failure_message(self) -> str:
        """E.g. ``output 'output' differs at 1x64x43x29: max abs 0.152 at shape 1x64x43x29 index [0, 7, 1, 15] ...``."""
        lines = []
        for o in self.outputs:
            if o.nonfinite_reference:
                lines.append(f"the model computes NaN/Inf in eager at {', '.join(o.nonfinite_reference_shapes)}: "
                             f"{o.nonfinite_reference} elements of output {o.name!r}")
        for o in self.outputs:
            if o.failing_elements == 0 or o.nonfinite_reference:
                continue
            line = f"output {o.name!r} differs at {', '.join(o.failing_shapes)}"
            if math.isfinite(o.max_abs_err):
                line += (f": max abs {o.max_abs_err:.3g} at shape {o.worst_shape} index {o.worst_index}, "
                         f"{o.failing_elements} elements past {o.rule(self.tolerance)}")
            elif o.worst_index:
                line += f": non-finite value at shape {o.worst_shape} index {o.worst_index}"
            lines.append(line)
        if not self.outputs:
            lines.append("no outputs were compared")
        if self.blame and lines:
            lines.append(self.blame)
        return "; ".join(lines)

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "passed": self.passed,
            "max_abs_err": self.max_abs_err,
            "atol": self.tolerance.atol if self.tolerance else None,
            "rtol": self.tolerance.rtol if self.tolerance else None,
            "shapes": self.shapes,
            "outputs": [o.to_dict() for o in self.outputs],
            "notes": self.notes,
            "noise": self.noise,
            "blame": self.blame,
        }


def _cosine_and_sqnr(ref: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    if not (np.isfinite(ref).all() and np.isfinite(got).all()):
        return math.nan, math.nan
    norms = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(np.dot(ref.ravel(), got.ravel()) / norms) if norms > 0 else float(np.array_equal(ref, got))
    noise = float(np.sum((ref - got) ** 2))
    signal = float(np.sum(ref ** 2))
    sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    return cosine, sqnr


def _lowest(a: float, b: float) -> float:
    """min, where NaN (a comparison with non-finite values) wins."""
    return math.nan if math.isnan(a) or math.isnan(b) else min(a, b)


def _past(diff: np.ndarray, ref: np.ndarray, tol: Tolerance | None, channel_atol: np.ndarray | None) -> np.ndarray:
    """Elements past the rule: non-finite, past both of `tol`'s limits, or past their channel's atol."""
    fails = np.isinf(diff)
    if tol is not None:
        fails |= (diff > tol.atol) & (diff > tol.rtol * np.abs(ref))
    if channel_atol is not None:
        if ref.ndim >= 2 and channel_atol.shape == (ref.shape[1],):
            limit: np.ndarray | float = channel_atol.reshape((1, -1) + (1,) * (ref.ndim - 2))
        else:
            limit = float(channel_atol.reshape(-1).max(initial=0.0))
        # two fp32 implementations of an activation differ by a few ulps of the value itself
        fails |= diff > np.maximum(limit, ULPS_RTOL * np.abs(ref))
    return fails


def compare(ref: np.ndarray, got: np.ndarray, tol: Tolerance | None, shape: Shape, acc: OutputParity,
            channel_atol: np.ndarray | None = None) -> None:
    """Fold one output at one input shape into `acc` (shape mismatches and non-finite values count as failures).

    `tol`: the scalar rule (None: none); `channel_atol`: one atol per channel (axis 1), a second
    rule (noise-scaled tolerances; never below `ULPS_RTOL` of the element's value): an element
    fails past either.
    """
    tag = format_shape(shape)
    acc.tolerance = acc.tolerance or tol
    if channel_atol is not None and channel_atol.size:
        low, high = float(channel_atol.min()), float(channel_atol.max())
        seen = acc.channel_atol or [low, high]
        acc.channel_atol = [min(low, seen[0]), max(high, seen[1])]  # over every shape folded in
    if ref.shape != got.shape:
        acc.failing_elements += max(ref.size, 1)
        acc.failing_shapes.append(f"{tag} (output shape {got.shape}, expected {ref.shape})")
        acc.max_abs_err, acc.worst_shape, acc.worst_index = math.inf, tag, []
        return
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    bad_ref = int(np.size(ref64) - np.count_nonzero(np.isfinite(ref64)))
    if bad_ref:
        acc.nonfinite_reference += bad_ref
        acc.nonfinite_reference_shapes.append(tag)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(ref64 - got64)
        diff[~np.isfinite(diff)] = np.inf
        fails = _past(diff, ref64, tol, channel_atol)
        rel = diff / np.maximum(np.abs(np.nan_to_num(ref64, nan=0.0)), np.finfo(np.float32).tiny)
    cosine, sqnr = _cosine_and_sqnr(ref64, got64)
    if diff.size and diff.max() >= acc.max_abs_err:
        acc.max_abs_err = float(diff.max())
        acc.worst_shape = tag
        acc.worst_index = [int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape)]
    acc.max_rel_err = max(acc.max_rel_err, float(rel.max()) if rel.size else 0.0)
    acc.min_cosine = _lowest(acc.min_cosine, cosine)
    acc.min_sqnr_db = _lowest(acc.min_sqnr_db, sqnr)
    if fails.any():
        acc.failing_elements += int(fails.sum())
        acc.failing_shapes.append(tag)


def record_backend_error(acc: OutputParity, shape: Shape, error: str) -> None:
    """The backend raised (or returned the wrong outputs) at `shape`: the shape fails, its error is kept."""
    tag = format_shape(shape)
    acc.failing_elements += 1
    acc.failing_shapes.append(f"{tag} (backend raised: {error})")
    acc.max_abs_err, acc.worst_shape, acc.worst_index = math.inf, tag, []
