"""Comparing eager events with the graph's tensors, in execution order, to find the first divergence.

An event's eager tensors are matched against the runtime values of its module's boundary
tensors (`GraphIndex.outs` for "out", `.ins` for "in"): by shape, and among tensors of
the same shape the closest one (a module called twice, or an output consumed twice, has
several). Like is compared with like: the rule is the verdict's (`attndeploy.verdict`):
the graph tensor's distance to the module's float64 output against eager fp32's own (the
same event in the float64 run), so a module is named only where its own error exceeds
eager's by the rule's factor; a NaN or Inf never passes. Under a reduced-precision budget
(a cosine floor: `attndeploy verify` on an fp16 or INT8 graph) a tensor diverges where its cosine
with eager fp32 falls below the floor. No tensor of the eager shape but
one of the same rank is a shape mismatch; no floating-point tensor at all leaves the event
unmapped.

A module the exporter folded into a neighbour (BatchNorm into Conv) has no node, and the
neighbour's boundary tensors are the pair's: a diverging event is accepted when they match
the folded module's output ("out") or input ("in") instead (`_folded_match`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from attndeploy.localise.graph import GraphIndex
from attndeploy.events import Event
from attndeploy.verdict import Budget, OutputVerdict
from attndeploy.verdict.judge import fold


@dataclass
class Mismatch:
    """The worst tensor of a diverging event: `shape` eager's, `got_shape` the graph's."""

    tensor: str
    shape: tuple[int, ...]
    got_shape: tuple[int, ...]
    max_abs: float = math.inf
    index: list[int] = field(default_factory=list)
    failing: int = 0

    @property
    def shape_mismatch(self) -> bool:
        return self.shape != self.got_shape


def _check(ref: np.ndarray, ref64: np.ndarray, got: np.ndarray, budget: Budget) -> OutputVerdict:
    acc = OutputVerdict("")
    fold(acc, budget, "x".join(map(str, ref.shape)), ref64, ref, got)
    return acc


def _diverged(acc: OutputVerdict) -> bool:
    """Past the budget: elements past it, or (a cosine budget: reduced precision) the cosine below its floor."""
    return acc.failing_elements > 0 or acc.below_budget


def _pairs(event: Event, twin: Event | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(eager fp32 tensor, its float64 counterpart) of `event`; the fp32 tensor itself where the float64 run's event
    does not line up (another path or tensor count)."""
    if twin is None or twin.path != event.path or twin.kind != event.kind or len(twin.tensors) != len(event.tensors):
        return [(t, t.astype(np.float64)) for t in event.tensors]
    return [(t, t64 if t64.shape == t.shape else t.astype(np.float64)) for t, t64 in zip(event.tensors, twin.tensors)]


def _float_values(names: list[str], values: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return [(n, values[n]) for n in names if n in values and np.issubdtype(values[n].dtype, np.floating)]


def compare_tensors(pairs: list[tuple[np.ndarray, np.ndarray]], names: list[str], values: dict[str, np.ndarray],
                    budget: Budget) -> tuple[bool | None, Mismatch | None]:
    """(None, None): nothing to compare; (True, None): all matched; (False, worst): diverged.

    `pairs`: (eager fp32, float64) of each tensor the event carries."""
    candidates = _float_values(names, values)
    verdict: bool | None = None
    worst: Mismatch | None = None
    for ref, ref64 in pairs:
        same = [(n, v) for n, v in candidates if v.shape == ref.shape]
        if not same:
            ranked = [(n, v) for n, v in candidates if v.ndim == ref.ndim]
            if ranked and len(candidates) <= len(pairs):  # its only tensor(s), of another shape
                name, got = ranked[-1]
                worst = worst or Mismatch(name, tuple(ref.shape), tuple(got.shape))
                verdict = False
            continue
        checks = [(n, _check(ref, ref64, v, budget)) for n, v in same]
        name, best = min(checks, key=lambda c: (_diverged(c[1]), c[1].failing_elements, c[1].max_abs_err))
        if not _diverged(best):
            verdict = True if verdict is None else verdict
            continue
        verdict = False
        if worst is None or (not worst.shape_mismatch and best.max_abs_err > worst.max_abs):
            worst = Mismatch(name, tuple(ref.shape), tuple(ref.shape), best.max_abs_err, best.worst_index,
                             best.failing_elements)
    return verdict, worst


def event_names(event: Event, index: GraphIndex) -> list[str]:
    """The graph tensors that carry `event` (none when its module emitted no node)."""
    if not index.has_nodes(event.path):
        return []
    return (index.outs if event.kind == "out" else index.ins).get(event.path, [])


def _folded_match(events: list[Event], twins: list[Event], k: int, names: list[str], index: GraphIndex,
                  values: dict[str, np.ndarray], budget: Budget) -> bool:
    """Whether event k's graph tensors belong to a node-less neighbour folded into its module.

    "out": they equal the output of a node-less module that ran right after it (TorchScript
    folds BatchNorm into the Conv before it); "in": they equal the input of a node-less
    module that ran right before it (dynamo names the fused Conv after the BatchNorm).
    """
    kind = events[k].kind
    neighbours = events[k + 1:] if kind == "out" else events[k - 1::-1] if k else []
    for other in neighbours:
        if index.has_nodes(other.path):
            return False
        twin = twins[other.index] if other.index < len(twins) else None
        if other.kind == kind and compare_tensors(_pairs(other, twin), names, values, budget)[0] is True:
            return True
    return False


@dataclass
class Divergence:
    """The first diverging event; `compared` and `matched` count the events checked before it."""

    event: Event
    worst: Mismatch
    compared: int
    matched: int


def first_divergence(events: list[Event], twins: list[Event], index: GraphIndex, values: dict[str, np.ndarray],
                     budget: Budget) -> tuple[Divergence | None, int, int]:
    """(the first diverging event or None, events compared, events matched), in execution order.

    `twins`: the same events in the float64 run (empty: judged against eager fp32 itself, `budget` a given one).

    A diverging *input* (what a module passes to a child) counts only once the next compared
    event diverges too: a module called several times (SPPF's one MaxPool, three times) has
    its calls told apart by shape and value only, and a call matched to another call's tensor
    is followed by matches again.
    """
    compared = matched = 0
    pending: Divergence | None = None
    for k, event in enumerate(events):
        names = event_names(event, index)
        pairs = _pairs(event, twins[k] if k < len(twins) else None)
        verdict, worst = compare_tensors(pairs, names, values, budget) if names else (None, None)
        if verdict is None:
            continue
        compared += 1
        if verdict or _folded_match(events, twins, k, names, index, values, budget):
            matched += 1
            pending = None
            continue
        assert worst is not None
        if pending is not None:
            return pending, pending.compared, pending.matched
        if event.kind != "in":
            return Divergence(event, worst, compared, matched), compared, matched
        pending = Divergence(event, worst, compared, matched)
    return (pending, pending.compared, pending.matched) if pending is not None else (None, compared, matched)
