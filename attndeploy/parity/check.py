"""Parity runs: eager PyTorch on fresh inputs once per shape (`Probe`), then each backend against them.

    eager = EagerRuns(model, plan.make, seed=0)
    probes = [eager.probe(s) for s in shapes]                # eager runs here, once per shape
    report = compare_probes(probes, run_backend, names, tol, "onnxruntime-cpu")

Inputs are derived from the seed and the shape, so a shape probed while learning the
model's shape rule is not run again for the sweep. Each side gets its own copy of every
input: a model that writes into its input (`x[:, i] = ...`) cannot change what the
backend is fed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from attndeploy.defaults import ONNX_TOL, Tolerance
from attndeploy.errors import first_line
from attndeploy.modulepath import ModuleStack
from attndeploy.parity.compare import (
    OutputParity,
    ParityReport,
    compare,
    record_backend_error,
)
from attndeploy.parity.inputs import random_input
from attndeploy.parity.outputs import dropped_outputs, flatten_outputs, to_numpy
from attndeploy.shapes import Shape, format_shape

Backend = Callable[[np.ndarray], Sequence[np.ndarray]]
MakeInput = Callable[[Shape, int], torch.Tensor]


@dataclass
class Probe:
    """One parity input (N, C, H, W) float32 and the eager outputs on it, by flattened name."""

    shape: Shape
    x: np.ndarray
    refs: dict[str, np.ndarray]


class EagerFailed(RuntimeError):
    """The eager model raised at a shape; the message says where (`` `model.12` (Concat): ...``)."""


@torch.no_grad()
def eager_outputs(model: torch.nn.Module, x: torch.Tensor, dropped: list[str] | None = None) -> dict[str, np.ndarray]:
    """`model(copy of x)`'s tensor outputs as float32 numpy arrays, flattened and named; notes for the leaves that
    are not tensors (`None` ...) go to `dropped`."""
    out = model(x.clone())
    if dropped is not None:
        dropped[:] = dropped_outputs(out)
    return to_numpy(flatten_outputs(out))


def shape_seed(seed: int, shape: Shape) -> int:
    """The input seed for `shape`: the same shape always gets the same input."""
    return seed + zlib.crc32(format_shape(shape).encode()) % 1_000_003


class EagerRuns:
    """The eager truth at any shape, run once per shape (cached) on inputs from `make_input`."""

    def __init__(self, model: torch.nn.Module, make_input: MakeInput = random_input, seed: int = 0) -> None:
        self.model, self.make_input, self.seed = model, make_input, seed
        self._done: dict[Shape, Probe] = {}
        self.dropped: list[str] = []   # the outputs that are not graph outputs (`output1: NoneType dropped ...`)

    def probe(self, shape: Shape) -> Probe:
        """The probe at `shape`; `EagerFailed` (naming the module) when the model raises there."""
        shape = tuple(shape)
        if shape not in self._done:
            self.add(self.make_input(shape, shape_seed(self.seed, shape)))
        return self._done[shape]

    def add(self, x: torch.Tensor) -> Probe:
        """The probe on the given input `x` (the user's example): the probe at its shape from now on."""
        shape = tuple(x.shape)
        kept = x.numpy().copy()
        with ModuleStack(self.model) as stack:
            try:
                refs = eager_outputs(self.model, x, self.dropped)
            except Exception as err:  # the model's own error, with where it happened
                where = stack.where()
                raise EagerFailed(f"{format_shape(shape)} fails in eager" + (f" at {where}" if where else "")
                                  + f": {first_line(err, 200)}") from err
        self._done[shape] = Probe(shape, kept, refs)
        return self._done[shape]

    def smallest(self) -> Probe:
        """The probe with the fewest input elements run so far."""
        return min(self._done.values(), key=lambda p: p.x.size)

    def run(self, shape: Shape) -> None:
        """`probe` for its side effect (shape-rule discovery)."""
        self.probe(shape)


def make_probes(model: torch.nn.Module, shapes: Sequence[Shape], seed: int = 0,
                make_input: MakeInput = random_input) -> list[Probe]:
    """Eager `model` on a fresh input per shape."""
    runs = EagerRuns(model, make_input, seed)
    return [runs.probe(s) for s in shapes]


def paired_outputs(probes: Sequence[Probe], run_backend: Backend,
                   accs: Sequence[OutputParity]) -> Iterator[tuple[Probe, int, np.ndarray, np.ndarray]]:
    """(probe, output index, eager output, backend output) for every probe the backend runs on a copy of.

    A backend that raises, or returns the wrong number of outputs, fails that shape in every
    `accs` entry with its error kept (a graph with baked sizes often fails at run time at other shapes).
    """
    for probe in probes:
        refs = list(probe.refs.values())
        try:
            gots = [np.asarray(g) for g in run_backend(probe.x.copy())]
        except Exception as err:  # onnxruntime's own error types: the graph cannot run at this shape
            for acc in accs:
                record_backend_error(acc, probe.shape, first_line(err))
            continue
        if len(gots) != len(refs) or len(refs) != len(accs):
            for acc in accs:
                record_backend_error(acc, probe.shape, f"{len(gots)} outputs, expected {len(refs)}")
            continue
        for i, (ref, got) in enumerate(zip(refs, gots)):
            yield probe, i, ref, got


def compare_probes(probes: Sequence[Probe], run_backend: Backend, names: Sequence[str], tol: Tolerance | None,
                   backend: str,
                   channel_atol: Callable[[Probe], Mapping[str, np.ndarray]] | None = None) -> ParityReport:
    """`run_backend(copy of x)` against each probe's eager outputs, output by output in order.

    `names` are the backend's output names (the report's labels); `tol` the scalar rule or
    None; `channel_atol(probe)` per output (in order) an atol per channel (axis 1) at that
    probe, a second rule (noise-scaled tolerances): an element fails past either. An output
    with neither rule at a probe (its noise could not be measured there) gets `ONNX_TOL`:
    a comparison is never left with no rule.
    """
    accs = [OutputParity(n, tol) for n in names]
    per_channel: dict[Shape, list[np.ndarray]] = {}
    for probe, i, ref, got in paired_outputs(probes, run_backend, accs):
        if channel_atol is not None and probe.shape not in per_channel:
            per_channel[probe.shape] = list(channel_atol(probe).values())
        atols = per_channel.get(probe.shape, [])
        atol = atols[i] if i < len(atols) else None
        compare(ref, got, ONNX_TOL if tol is None and atol is None else tol, probe.shape, accs[i], atol)
    return ParityReport(backend, tol, [format_shape(p.shape) for p in probes], accs)


def check_parity(model: torch.nn.Module, run_backend: Backend, output_names: Sequence[str], shapes: Sequence[Shape],
                 tol: Tolerance, backend: str, seed: int = 0) -> ParityReport:
    """Eager `model` vs `run_backend` on fresh random inputs at every shape in `shapes` (one-off checks)."""
    return compare_probes(make_probes(model, shapes, seed), run_backend, output_names, tol, backend)
