"""Parity of a reduced-precision graph against eager fp32: `ReducedParity`, a `ParityReport` with budgets.

    report = reduced_parity(probes, run, names, "onnxruntime-cpu", "fp16", FP16_MIN_COSINE)
    report.passed          # every output finite and cosine >= the budget (and strict-fp16 too, when attached)
    report.metrics["output"].sqnr_db, report.worst_module["path"]

Per-element tolerances mean little after rounding every tensor: the budget is the cosine
floor per output (fp16 0.9999, int8 0.99; `attndeploy.defaults`) and every value finite
(a NaN or Inf never passes, as in fp32 parity). Each output also reports SQNR, max abs and
the 99th percentile of the relative error (`metrics.ErrorStats`), and the report holds the
per-module errors (`modules`), the worst module and what the search kept or excluded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attndeploy.parity.check import Probe, paired_outputs
from attndeploy.parity.compare import (
    OutputParity,
    ParityReport,
    compare,
)
from attndeploy.precision.metrics import ErrorStats, error_stats
from attndeploy.shapes import format_shape


@dataclass
class ReducedParity(ParityReport):
    """Eager fp32 vs a reduced-precision graph on one backend (`strict`: the strict-fp16 evaluation)."""

    precision: str = "fp16"
    cosine_budget: float = 0.0
    metrics: dict[str, ErrorStats] = field(default_factory=dict)
    strict: ReducedParity | None = None
    modules: list[dict[str, Any]] = field(default_factory=list)
    worst_module: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def below_budget(self) -> list[str]:
        """Outputs whose cosine misses the budget (NaN: a non-finite comparison)."""
        return [o.name for o in self.outputs if math.isnan(o.min_cosine) or o.min_cosine < self.cosine_budget]

    @property
    def passed(self) -> bool:
        own = bool(self.outputs) and all(o.passed for o in self.outputs) and not self.below_budget()
        return own and (self.strict is None or self.strict.passed)

    def failure_message(self) -> str:
        lines = []
        elementwise = ParityReport.failure_message(self)
        if elementwise:
            lines.append(elementwise)
        for name in self.below_budget():
            cos = next(o.min_cosine for o in self.outputs if o.name == name)
            if not math.isnan(cos):
                lines.append(f"output {name!r}: cosine {cos:.6f} below the {self.precision} budget "
                             f"{self.cosine_budget:g}")
        if self.strict is not None and not self.strict.passed:
            lines.append(f"strict-fp16 evaluation: {self.strict.failure_message()}")
        if lines and self.worst_module:
            lines.append(f"worst module: {self.worst_module.get('message', self.worst_module.get('path'))}")
        return "; ".join(lines)

    def to_dict(self) -> dict:
        data = ParityReport.to_dict(self)
        data.update({"passed": self.passed, "precision": self.precision, "cosine_budget": self.cosine_budget,
                     "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                     "strict": self.strict.to_dict() if self.strict is not None else None,
                     "modules": self.modules, "worst_module": self.worst_module, **self.details})
        return data


def reduced_parity(probes: Sequence[Probe], run: Callable[[np.ndarray], Sequence[np.ndarray]], names: Sequence[str],
                   backend: str, precision: str, cosine_budget: float) -> ReducedParity:
    """`run(copy of x)` against each probe's eager outputs, in order; a raising backend fails that shape.

    Element-wise only non-finite values fail (no tolerance): the cosine budget decides.
    """
    accs = [OutputParity(n, None) for n in names]
    stats: dict[str, ErrorStats] = {}
    for probe, i, ref, got in paired_outputs(probes, run, accs):
        acc = accs[i]
        compare(ref, got, None, probe.shape, acc)
        if ref.shape == got.shape:
            one = error_stats(ref, got)
            stats[acc.name] = stats[acc.name].worse(one) if acc.name in stats else one
    return ReducedParity(backend, None, [format_shape(p.shape) for p in probes], accs, precision=precision,
                         cosine_budget=cosine_budget, metrics=stats)


__all__ = ["ReducedParity", "reduced_parity"]
