"""`Truth`: the probes, the shape rule and the task inputs of one export, each computed once by `EagerModel`.

    truth.probes                      # TruthProbe per parity shape (the example first): x, eager fp32, float64
    truth.probe((2, 3, 480, 320))     # another shape inside the rule, run once and kept
    truth.data(truth.probes)          # a `TruthData` the judge (and the device bundle) reads
    truth.module_runs(probe)          # every module's outputs in fp32 and float64 (localisation), for one probe
                                      # (of the model as exported: deploy twins in, `module_model`)

Where a probe is ill-conditioned (eager fp32 far from float64) it also holds the distance to
float64 of eager at another thread count (`TruthProbe.spread`): the rule's basis is then the larger of the two.
Where the model cannot run in float64 the reference is a stand-in: eager fp32 at one thread
with every input element moved by one ulp (another fp32 implementation of the same math,
on an input as close as fp32 allows). The report names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from attndeploy.module_events import EagerRun
from attndeploy.parity.shape_rules import ShapeRule
from attndeploy.shapes import Shape
from attndeploy.truth.eager import EagerModel
from attndeploy.verdict.rule import eager_distance, ill_conditioned
from attndeploy.verdict.truth import TruthData, TruthProbe

STAND_IN = "fp32 at one thread on the input moved by one ulp (a stand-in: the model does not run in float64)"


@dataclass
class TaskTruth:
    """The family's task inputs (K, C, H, W) float32 (a detector's letterboxed images), eager's outputs on them, and
    `eager64`: the float64 copy's outputs there (None: it cannot run in float64), run when first asked for — only
    a task check that fails needs them (to tell a failure from inputs eager itself cannot decide)."""

    inputs: np.ndarray
    eager: list[np.ndarray]
    run_float64: Callable[[np.ndarray], list[np.ndarray] | None] = field(default=lambda x: None, repr=False)
    _eager64: tuple[list[np.ndarray] | None] | None = field(default=None, repr=False)

    @property
    def eager64(self) -> list[np.ndarray] | None:
        if self._eager64 is None:
            self._eager64 = (self.run_float64(self.inputs),)
        return self._eager64[0]


class Truth:
    """See the module docstring. `output_names`: the graph's names for the flattened eager outputs, in order."""

    def __init__(self, eager: EagerModel, input_name: str, output_names: list[str]) -> None:
        self.eager = eager
        self.input_name, self.output_names = input_name, list(output_names)
        self.rule: ShapeRule | None = None
        self.dynamic_axes: list[int] = []
        self.probes: list[TruthProbe] = []      # the parity probes, the example first
        self.task: TaskTruth | None = None
        self.notes: list[str] = []
        self._made: dict[Shape, TruthProbe] = {}
        self._modules: tuple[Shape, EagerRun, EagerRun | None] | None = None
        self.module_model: EagerModel = eager   # the model whose modules the graph's nodes map to (see `module_runs`)

    @property
    def reference(self) -> str:
        return STAND_IN if self.eager.failed64 else "float64"

    def _named(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, outputs.values()))

    def probe(self, shape: Shape) -> TruthProbe:
        """The truth at `shape` (`EagerFailed` where the model raises there), made once."""
        shape = tuple(shape)
        if shape not in self._made:
            x = self.eager.input_at(shape)
            eager = self._named(self.eager.fp32_at(shape))
            reference = self.eager.float64(x)
            spread: dict[str, np.ndarray] = {}
            if reference is None:
                reference = {k: v.astype(np.float64) for k, v in self.eager.one_thread(x, nudge=True).items()}
            else:
                spread = self._spread(x, eager, self._named(reference))
            self._made[shape] = TruthProbe(shape, x, eager, self._named(reference), spread)
        return self._made[shape]

    def _spread(self, x: np.ndarray, eager: dict[str, np.ndarray],
                reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Where `x` is ill-conditioned (eager far from float64): per output, the per-channel distance to float64 of
        eager at another thread count — a second fp32 sample of the rounding (`attndeploy.verdict.rule`); {}
        elsewhere."""
        floating = [k for k, v in eager.items() if np.issubdtype(v.dtype, np.floating)]
        if not any(ill_conditioned(reference[k], eager[k]) for k in floating):
            return {}
        other = self._named(self.eager.other_threads(x))
        return {k: eager_distance(reference[k], other[k]) for k in floating}

    @property
    def example(self) -> TruthProbe:
        return self.probes[0]

    def smallest(self) -> TruthProbe:
        """The cheapest probe made so far."""
        return min(self._made.values(), key=lambda p: p.x.size)

    def data(self, probes: list[TruthProbe] | None = None) -> TruthData:
        """The judge's view of `probes` (default: the parity probes)."""
        note = self.eager.failed64
        return TruthData(self.reference, note, self.input_name, self.output_names,
                         list(self.probes if probes is None else probes))

    def module_runs(self, probe: TruthProbe, double: bool = True) -> tuple[EagerRun, EagerRun | None]:
        """(fp32 events, float64 events or None) of every module on `probe`'s input; kept for the last probe asked
        (`double=False`: the fp32 events alone, None in their stead; the float64 ones are run when first asked for).

        The modules are `module_model`'s: the model as exported (deploy twins swapped in, tested equal to their
        references), whose module paths and calls the graph's nodes carry — a twin computes some of its
        reference's children differently, so the reference's events would not line up with the graph's tensors.
        """
        if self._modules is None or self._modules[0] != probe.shape:
            self._modules = (probe.shape, self.module_model.events(probe.x), None)
        shape, fp32, float64 = self._modules
        if double and float64 is None and not self.eager.failed64:
            float64 = self.module_model.events(probe.x, double=True)
            self._modules = (shape, fp32, float64)
        return fp32, float64 if double else None

    @property
    def nbytes(self) -> int:
        task = self.task.inputs.nbytes + sum(a.nbytes for a in self.task.eager) if self.task else 0
        return sum(p.nbytes for p in self._made.values()) + task


__all__ = ["STAND_IN", "TaskTruth", "Truth"]
