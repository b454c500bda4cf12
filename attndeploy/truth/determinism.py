"""The determinism gate: a model whose eager output moves between runs gets no verdict.

On the cheapest probe, eager runs again at the same thread count (a fixed model repeats
itself to within `REPEAT_FLOOR` of each output's scale), then at one thread (other
summation orders: another fp32 implementation of the same math, judged by the same rule as
any candidate, `attndeploy.verdict.judge`). On an ill-conditioned probe another thread
count is already part of the truth (`TruthProbe.spread`: the basis is the larger of both
runs' distances to float64), so only the repeat is checked there. Past either the model is
not a fixed truth (overlapping in-place copies, races, random ops in eval mode such as
`F.dropout`, whose `training` defaults to True); `first_moving_module` then runs it twice
with forward hooks and names the first module, in execution order, whose output differs.
"""

from __future__ import annotations

import numpy as np
import torch

from attndeploy.truth.eager import EagerModel, threads
from attndeploy.verdict import Budget, TruthProbe, judge

REPEAT_FLOOR = 1e-6   # ~8 float32 ulps of an output's largest value


def _repeat_excess(probe: TruthProbe, outputs: list[np.ndarray]) -> float:
    """The largest |difference| past `REPEAT_FLOOR` x the output's scale (0.0 when none)."""
    worst = 0.0
    for ref, other in zip(probe.eager.values(), outputs):
        ref64, other64 = ref.astype(np.float64), other.astype(np.float64)
        diff = np.abs(ref64 - other64)
        diff[(ref64 == other64) | (np.isnan(ref64) & np.isnan(other64))] = 0.0  # NaN where it was NaN is no move
        diff[np.isnan(diff)] = np.inf
        scale = float(np.abs(ref64[np.isfinite(ref64)]).max(initial=0.0))
        worst = max(worst, float(diff[diff > REPEAT_FLOOR * scale].max(initial=0.0)))
    return worst


@torch.no_grad()
def first_moving_module(eager: EagerModel, x: np.ndarray, one_thread: bool) -> str:
    """"`s2.mlp` (Mlp) by 1.09": the first module whose output differs between two runs."""
    first = eager.events(x)
    if one_thread:
        with threads(1):
            second = eager.events(x)
    else:
        second = eager.events(x)
    for a, b in zip(first.events, second.events):
        if a.kind != "out":
            continue
        where = f"`{a.path or '<root>'}` ({type(first.modules[a.path]).__name__})"
        for ta, tb in zip(a.tensors, b.tensors):
            if ta.shape != tb.shape:
                return f"{where}: output shape {ta.shape} then {tb.shape}"
            if not np.array_equal(ta, tb):
                scale = float(np.abs(ta).max()) if ta.size else 0.0
                delta = float(np.abs(ta.astype(np.float64) - tb).max())
                if delta > REPEAT_FLOOR * scale:
                    return f"{where} by {delta:.3g}"
    return "no single module (the difference builds up across modules)"


def _moving(eager: EagerModel, probe: TruthProbe, one_thread: bool, by: str) -> str:
    how = "between all threads and one thread" if one_thread else "between two runs"
    return (f"the eager output changes {how} by {by} at {first_moving_module(eager, probe.x, one_thread)} — in-place "
            "overlapping copies, a race, or random ops in eval mode (F.dropout's training defaults to True)? No "
            "verdict on a moving target")


def check_determinism(eager: EagerModel, probe: TruthProbe, reference: str) -> str | None:
    """None when eager repeats itself on `probe` and one thread stays within the fp32 rule; else why not."""
    again = list(eager.fp32(probe.x).values())
    excess = _repeat_excess(probe, again)
    if excess > 0:
        return _moving(eager, probe, False, f"{excess:.3g}")
    if torch.get_num_threads() <= 1 or probe.spread:  # with a spread, one thread is already inside eager's basis
        return None
    verdict = judge([probe], lambda x: list(eager.one_thread(x).values()), list(probe.eager), Budget.float64(),
                    ("fp32", "eager-one-thread"), reference)
    if not any(o.failing_elements for o in verdict.outputs):  # a NaN eager computes at every thread count is no move
        return None
    worst = max(verdict.outputs, key=lambda o: o.ratio)
    return _moving(eager, probe, True, f"{worst.max_abs_err:.3g} ({worst.ratio:.3g}x eager's distance to "
                   f"{reference})")


__all__ = ["REPEAT_FLOOR", "check_determinism", "first_moving_module"]
