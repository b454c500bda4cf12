"""Parity: eager PyTorch (the truth) against a backend, per output, over several shapes.

An element fails only if it exceeds both `atol` and `rtol * |reference|` (Polygraphy's
rule). Each output reports max abs, max rel, cosine similarity and where the worst
element sits (shape and index).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from attndeploy.errors import first_line
from attndeploy.registry import Tolerance
from attndeploy.shapes import Shape, format_shape


@dataclass
class OutputParity:
    """One output's comparison, accumulated over every shape checked."""

    name: str
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    min_cosine: float = 1.0
    worst_shape: str = ""
    worst_index: list[int] = field(default_factory=list)
    failing_elements: int = 0
    failing_shapes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failing_elements == 0


@dataclass
class ParityReport:
    """Eager vs one backend; `passed` only if every output passed at every shape."""

    backend: str
    tolerance: Tolerance
    shapes: list[str]
    outputs: list[OutputParity]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs_err(self) -> float:
        return max((o.max_abs_err for o in self.outputs), default=0.0)

    def failure_message(self) -> str:
        """E.g. ``output 'output' differs at 1x64x43x29: max abs 0.152 at shape 1x64x43x29 index [0, 7, 1, 15] ...``."""
        lines = []
        for o in self.outputs:
            if o.passed:
                continue
            line = f"output {o.name!r} differs at {', '.join(o.failing_shapes)}"
            if o.max_abs_err != float("inf"):
                line += (f": max abs {o.max_abs_err:.3g} at shape {o.worst_shape} index {o.worst_index}, "
                         f"{o.failing_elements} elements past atol {self.tolerance.atol:g} and "
                         f"rtol {self.tolerance.rtol:g}")
            lines.append(line)
        return "; ".join(lines)

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "passed": self.passed,
            "max_abs_err": self.max_abs_err,
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "shapes": self.shapes,
            "outputs": [{**asdict(o), "passed": o.passed} for o in self.outputs],
        }


def compare(ref: np.ndarray, got: np.ndarray, tol: Tolerance, shape: Shape, acc: OutputParity) -> None:
    """Fold one output at one input shape into `acc` (shape mismatches count as failures)."""
    tag = format_shape(shape)
    if ref.shape != got.shape:
        acc.failing_elements += max(ref.size, 1)
        acc.failing_shapes.append(f"{tag} (output shape {got.shape}, expected {ref.shape})")
        acc.max_abs_err, acc.worst_shape, acc.worst_index = float("inf"), tag, []
        return
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    diff = np.abs(ref64 - got64)
    diff[np.isnan(diff)] = np.inf
    fails = (diff > tol.atol) & (diff > tol.rtol * np.abs(ref64))
    rel = diff / np.maximum(np.abs(ref64), np.finfo(np.float32).tiny)
    norms = np.linalg.norm(ref64) * np.linalg.norm(got64)
    cosine = float(np.dot(ref64.ravel(), got64.ravel()) / norms) if norms > 0 else float(np.array_equal(ref64, got64))
    if diff.size and diff.max() >= acc.max_abs_err:
        acc.max_abs_err = float(diff.max())
        acc.worst_shape = tag
        acc.worst_index = [int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape)]
    acc.max_rel_err = max(acc.max_rel_err, float(rel.max()) if rel.size else 0.0)
    acc.min_cosine = min(acc.min_cosine, cosine)
    if fails.any():
        acc.failing_elements += int(fails.sum())
        acc.failing_shapes.append(tag)


def output_names(count: int) -> list[str]:
    """ONNX output names for a model with `count` outputs: `output`, or `output0`, `output1`, ..."""
    return ["output"] if count == 1 else [f"output{i}" for i in range(count)]


def record_backend_error(acc: OutputParity, shape: Shape, error: str) -> None:
    """The backend raised (or returned the wrong outputs) at `shape`: the shape fails, its error is kept."""
    tag = format_shape(shape)
    acc.failing_elements += 1
    acc.failing_shapes.append(f"{tag} (backend raised: {error})")
    acc.max_abs_err, acc.worst_shape, acc.worst_index = float("inf"), tag, []


def _as_numpy_outputs(out: object) -> list[np.ndarray]:
    tensors = out if isinstance(out, (tuple, list)) else (out,)
    return [t.detach().cpu().float().numpy() for t in tensors]


@torch.no_grad()
def eager_outputs(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    return _as_numpy_outputs(model(x))


def random_input(shape: Shape, seed: int) -> torch.Tensor:
    """A fresh N(0, 1) float32 input, reproducible from `seed`."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def check_parity(
    model: torch.nn.Module,
    run_backend: Callable[[np.ndarray], list[np.ndarray]],
    output_names: Sequence[str],
    shapes: Sequence[Shape],
    tol: Tolerance,
    backend: str,
    seed: int = 0,
) -> ParityReport:
    """Eager `model` vs `run_backend` on fresh random inputs at every shape in `shapes`."""
    accs = [OutputParity(name) for name in output_names]
    for i, shape in enumerate(shapes):
        x = random_input(shape, seed + 1000 * (i + 1))
        refs = eager_outputs(model, x)
        try:
            gots = run_backend(x.numpy())
        except Exception as err:  # a graph with baked sizes often fails at run time at other shapes
            for acc in accs:
                record_backend_error(acc, shape, first_line(err))
            continue
        if len(gots) != len(accs):
            for acc in accs:
                record_backend_error(acc, shape, f"{len(gots)} outputs, expected {len(accs)}")
            continue
        for acc, ref, got in zip(accs, refs, gots):
            compare(ref, got, tol, shape, acc)
    return ParityReport(backend, tol, [format_shape(s) for s in shapes], accs)
