"""Per-module INT8 sensitivity and the automatic exclusion of the most sensitive modules until a target cosine.

    found = quantize_to_target(quantizer, inputs, refs, target=0.99)
    found.sensitivity[0]     # ModuleSensitivity("model.22", cosine=0.9931, sqnr_db=18.6, ...): the most sensitive
    found.excluded           # ["model.22"] when the fully quantized graph missed the target
    found.model              # the Q/DQ graph handed on

Units: the quantizable nodes grouped by module path at the shallowest depth that splits
them into at least two groups (a detector's `model.0` ... `model.22`, a zoo module's
`query_conv`, `key_conv` ...; `<root>` for the exported module's own ops), at most
`MAX_UNITS` (the rest stay together in their parent). Sensitivity: only that unit
quantized, everything else float; ranked by the lowest output cosine, then SQNR (the
error that unit alone brings), computed only when the fully quantized graph misses.
Exclusion: from the fully quantized graph, the most sensitive units are left float one
by one until every output reaches `target` and
`accept(graph)` (the model family's task check: a detector's detections after NMS) passes,
or `max_excluded` units are out. A cosine over every output can hide what the task reads
(a few boxes whose class or score moved), hence the second test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from attndeploy.precision.int8 import Quantizer
from attndeploy.verdict.metrics import error_stats
from attndeploy.precision.policy import ROOT_LABEL, scope_label
from attndeploy.precision.strict import run_each

MAX_UNITS = 40
MAX_EXCLUDED = 8

Accept = Callable[[onnx.ModelProto], tuple[bool, str]]   # Q/DQ graph -> (passed, one line saying what was measured)


@dataclass
class ModuleSensitivity:
    """Output error with only `module`'s `nodes` quantized (lowest cosine and SQNR over outputs and inputs)."""

    module: str
    nodes: int
    cosine: float
    sqnr_db: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Int8Search:
    model: onnx.ModelProto
    sensitivity: list[ModuleSensitivity] = field(default_factory=list)   # most sensitive first
    excluded: list[str] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    cosine: float = 1.0          # the handed-on graph's lowest output cosine on the search inputs
    full_cosine: float = 1.0     # with every candidate quantized
    target: float = 0.99
    task_passed: bool | None = None   # the task check on the handed-on graph (None: no check)

    @property
    def passed(self) -> bool:
        return math.isfinite(self.cosine) and self.cosine >= self.target and self.task_passed is not False

    def to_dict(self) -> dict[str, object]:
        return {"target": self.target, "full_cosine": self.full_cosine, "cosine": self.cosine,
                "task_passed": self.task_passed, "passed": self.passed,
                "excluded": self.excluded, "rounds": self.rounds,
                "sensitivity": [s.to_dict() for s in self.sensitivity]}


def units(model: onnx.ModelProto, names: Sequence[str]) -> dict[str, list[str]]:
    """{module path: node names} of `names` at the shallowest depth giving >= 2 groups (see the docstring)."""
    wanted = set(names)
    scopes = {n.name: scope_label(n) for n in model.graph.node if n.name in wanted}

    def group(depth: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in names:
            scope = scopes.get(name, ROOT_LABEL)
            parts = [] if scope == ROOT_LABEL else scope.split(".")
            key = ".".join(parts[:depth]) if parts else ROOT_LABEL
            out.setdefault(key, []).append(name)
        return out

    deepest = max((len(s.split(".")) for s in scopes.values() if s != ROOT_LABEL), default=0)
    for depth in range(1, deepest + 1):
        found = group(depth)
        if len(found) >= 2 or depth == deepest:
            return found if len(found) <= MAX_UNITS else group(depth - 1) if depth > 1 else found
    return group(1)


def _score(model: onnx.ModelProto, inputs: Sequence[np.ndarray], refs: Sequence[Sequence[np.ndarray]],
           input_name: str) -> tuple[float, float]:
    """(lowest cosine, lowest SQNR) of `model`'s outputs against `refs` over `inputs`."""
    cos, sqnr = 1.0, math.inf
    for outs, ref in zip(run_each(model, [{input_name: x} for x in inputs]), refs):
        for r, g in zip(ref, outs):
            stats = error_stats(r, g)
            if not stats.finite:
                return math.nan, math.nan
            cos, sqnr = min(cos, stats.cosine), min(sqnr, stats.sqnr_db)
    return cos, sqnr


def quantize_to_target(quantizer: Quantizer, inputs: Sequence[np.ndarray], refs: Sequence[Sequence[np.ndarray]],
                       target: float, max_excluded: int = MAX_EXCLUDED, accept: Accept | None = None) -> Int8Search:
    """The Q/DQ graph meeting `target` on `inputs` (eager fp32 `refs`) and `accept`, the sensitivity ranking and what
    was excluded.

    `inputs`: model inputs (N, C, H, W) float32; `refs[i]`: the eager outputs on `inputs[i]`.
    """
    name = quantizer.input_name
    full = quantizer.quantize()
    full_cos, full_sqnr = _score(full, inputs, refs, name)
    result = Int8Search(full, [], [], [f"all {len(quantizer.candidates)} candidate node(s) quantized: lowest "
                                       f"cosine {full_cos:.6f}, SQNR {full_sqnr:.1f} dB"], full_cos, full_cos, target)
    model, cos = full, full_cos

    def good_enough() -> bool:
        result.task_passed = None
        if not (math.isfinite(cos) and cos >= target):
            return False
        if accept is None:
            return True
        result.task_passed, what = accept(model)
        if not result.task_passed:
            result.rounds.append(f"cosine target met, task check failed: {what}")
        return result.task_passed

    if good_enough():  # the fully quantized graph passes: no ranking needed
        return result
    groups = units(quantizer.model, quantizer.candidates)
    ranking = []
    for module, nodes in groups.items():
        unit_cos, unit_sqnr = _score(quantizer.quantize(only=nodes), inputs, refs, name)
        ranking.append(ModuleSensitivity(module, len(nodes), unit_cos, unit_sqnr))
    ranking.sort(key=lambda s: (-math.inf if math.isnan(s.cosine) else s.cosine, s.sqnr_db))
    result.sensitivity = ranking
    excluded: list[str] = []
    for unit in ranking[:max_excluded]:
        excluded.append(unit.module)
        model = quantizer.quantize(exclude=[n for m in excluded for n in groups[m]])
        cos, sqnr = _score(model, inputs, refs, name)
        result.rounds.append(f"{unit.module} left float: lowest cosine {cos:.6f}, SQNR {sqnr:.1f} dB")
        if good_enough():
            break
    result.model, result.cosine, result.excluded = model, cos, excluded
    return result


__all__ = ["MAX_EXCLUDED", "MAX_UNITS", "Accept", "Int8Search", "ModuleSensitivity", "quantize_to_target", "units"]
