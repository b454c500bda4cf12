"""`Verdict`: one candidate on one backend against the truth, output by output, folded over every probe.

`report.json` keys (kept from earlier releases): per verdict `backend`, `passed`,
`max_abs_err`, `atol`, `rtol`, `shapes`, `outputs`, `notes`, `noise`, `blame`; per output
`name`, `max_abs_err`, `max_rel_err`, `min_cosine`, `min_sqnr_db`, `worst_shape`,
`worst_index`, `failing_elements`, `failing_shapes`. Added: `precision`, `budget`, and per
output the distances the fp32 rule compares (`graph_distance`, `eager_distance`, `ratio`,
`factor`, `limit`) and the shapes where eager fp32 is itself far from float64
(`ill_conditioned_shapes`). `max_rel_err` is relative to the output channel's largest
|value| (an element near zero would make any rounding look huge).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from attndeploy.verdict.budget import Budget
from attndeploy.verdict.metrics import ErrorStats


@dataclass
class OutputVerdict:
    """One output's comparison, accumulated over every probe."""

    name: str
    max_abs_err: float = 0.0           # |candidate - eager fp32|
    max_rel_err: float = 0.0           # the same over the channel's largest |value|
    min_cosine: float = 1.0
    min_sqnr_db: float = math.inf
    worst_shape: str = ""
    worst_index: list[int] = field(default_factory=list)
    failing_elements: int = 0
    failing_shapes: list[str] = field(default_factory=list)
    nonfinite_reference: int = 0
    nonfinite_reference_shapes: list[str] = field(default_factory=list)
    below_budget: bool = False          # a cosine budget missed
    graph_distance: float = 0.0        # fp32 rule, at the channel with the largest ratio: G_c
    eager_distance: float = 0.0        # ... E_c there
    ratio: float = 0.0                 # max over channels and probes of G_c / basis_c
    limit: list[float] | None = None   # [min, max] of the per-channel limits (FACTOR x basis)
    ill_conditioned_shapes: list[str] = field(default_factory=list)
    undecided_shapes: list[str] = field(default_factory=list)   # detection rows the row check could not decide
    stats: ErrorStats | None = None    # cosine, SQNR, max abs, p99 relative error (reduced precision)

    @property
    def passed(self) -> bool:
        return self.failing_elements == 0 and self.nonfinite_reference == 0 and not self.below_budget

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stats"] = self.stats.to_dict() if self.stats is not None else None
        return {**data, "passed": self.passed}


@dataclass
class Verdict:
    """A candidate (`precision`) on one `backend` against the truth under `budget`; `passed` only if every output
    passed at every probe (and there was one)."""

    precision: str
    backend: str
    budget: Budget
    shapes: list[str]
    outputs: list[OutputVerdict]
    reference: str = "float64"            # what the truth's reference is ("float64", or the stand-in's name)
    notes: list[str] = field(default_factory=list)
    blame: str = ""                       # the first diverging module, where it failed (localisation)
    reduced_fraction: float | None = None  # weighted ops at `precision` / all weighted ops (reduced graphs)
    strict: Verdict | None = None          # the strict-fp16 evaluation of an fp16 graph
    modules: list[dict[str, Any]] = field(default_factory=list)   # per-module errors (reduced precision)
    worst_module: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)         # what a precision search kept or excluded
    noise: dict[str, Any] | None = None    # eager fp32's own largest distance to the reference, per output

    @property
    def passed(self) -> bool:
        own = bool(self.outputs) and all(o.passed for o in self.outputs)
        at_precision = (self.reduced_fraction is None or self.reduced_fraction >= self.budget.min_reduced_fraction)
        return own and at_precision and (self.strict is None or self.strict.passed)

    @property
    def max_abs_err(self) -> float:
        return max((o.max_abs_err for o in self.outputs), default=0.0)

    @property
    def metrics(self) -> dict[str, ErrorStats]:
        """Per output: cosine, SQNR, max abs and p99 relative error, worst over the probes."""
        return {o.name: o.stats for o in self.outputs if o.stats is not None}

    @property
    def min_cosine(self) -> float:
        values = [o.min_cosine for o in self.outputs]
        return math.nan if any(math.isnan(v) for v in values) else min(values, default=1.0)

    def failure_message(self) -> str:
        """Which output, by how much, at which shape (and where, once localised); "" when passed."""
        lines = [f"the model computes NaN/Inf in eager at {', '.join(o.nonfinite_reference_shapes)}: "
                 f"{o.nonfinite_reference} elements of output {o.name!r}" for o in self.outputs if o.nonfinite_reference]
        for o in self.outputs:
            if o.failing_elements == 0 or o.nonfinite_reference:
                continue
            line = f"output {o.name!r} differs at {', '.join(o.failing_shapes)}"
            if math.isfinite(o.max_abs_err):
                line += f": max abs {o.max_abs_err:.3g} at shape {o.worst_shape} index {o.worst_index}"
                if self.budget.kind == "float64":
                    line += (f", {o.ratio:.3g}x eager fp32's distance to float64 (limit {self.budget.factor:g}x; "
                             f"{o.graph_distance:.3g} vs {o.eager_distance:.3g})")
                else:
                    line += f", {o.failing_elements} elements past {self.budget.describe()}"
            elif o.worst_index:
                line += f": non-finite value at shape {o.worst_shape} index {o.worst_index}"
            lines.append(line)
        lines += [f"output {o.name!r}: cosine {o.min_cosine:.6f} below the {self.precision} budget "
                  f"{self.budget.min_cosine:g}" for o in self.outputs if o.below_budget and not math.isnan(o.min_cosine)]
        if self.reduced_fraction is not None and self.reduced_fraction < self.budget.min_reduced_fraction:
            lines.append(f"no weighted op runs at {self.precision}: the graph is not the precision asked for")
        if self.strict is not None and not self.strict.passed:
            lines.append(f"strict-fp16 evaluation: {self.strict.failure_message()}")
        if not self.outputs:
            lines.append("no outputs were compared")
        if lines and self.worst_module:
            lines.append(f"worst module: {self.worst_module.get('message', self.worst_module.get('path'))}")
        if self.blame and lines:
            lines.append(self.blame)
        return "; ".join(lines)

    def to_dict(self) -> dict[str, Any]:
        given = self.budget.kind == "given"
        return {
            "precision": self.precision, "backend": self.backend, "passed": self.passed,
            "max_abs_err": self.max_abs_err, "min_cosine": self.min_cosine,
            "atol": self.budget.atol if given else None, "rtol": self.budget.rtol if given else None,
            "budget": self.budget.to_dict(), "reference": self.reference, "shapes": self.shapes,
            "cosine_budget": self.budget.min_cosine if self.budget.kind == "cosine" else None,
            "metrics": {name: stats.to_dict() for name, stats in self.metrics.items()},
            "outputs": [o.to_dict() for o in self.outputs], "notes": self.notes, "noise": self.noise, "blame": self.blame,
            "reduced_fraction": self.reduced_fraction,
            "strict": self.strict.to_dict() if self.strict is not None else None,
            "modules": self.modules, "worst_module": self.worst_module, **self.details,
        }


__all__ = ["OutputVerdict", "Verdict"]
