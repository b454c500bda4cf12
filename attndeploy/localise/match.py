"""Comparing eager events with the graph's tensors, in execution order, to find the first divergence.

An event's eager tensors are matched against the runtime values of its module's boundary
tensors (`GraphIndex.outs` for "out", `.ins` for "in"): by shape, and among tensors of
the same shape the closest one (a module called twice, or an output consumed twice, has
several). The comparison rule is `attndeploy.parity.compare.compare` (past both atol and
rtol·|ref|, non-finite never passes). No tensor of the eager shape but one of the same
rank is a shape mismatch; no floating-point tensor at all leaves the event unmapped.

A module the exporter folded into a neighbour (BatchNorm into Conv) has no node, and the
neighbour's boundary tensors are the pair's: a diverging event is accepted when they match
the folded module's output ("out") or input ("in") instead (`_folded_match`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from attndeploy.defaults import Tolerance
from attndeploy.localise.graph import GraphIndex
from attndeploy.module_events import Event
from attndeploy.parity.compare import OutputParity, compare


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


def _check(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> OutputParity:
    acc = OutputParity("")
    compare(ref, got, tol, tuple(ref.shape), acc)
    return acc


def _float_values(names: list[str], values: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return [(n, values[n]) for n in names if n in values and np.issubdtype(values[n].dtype, np.floating)]


def compare_tensors(tensors: list[np.ndarray], names: list[str], values: dict[str, np.ndarray],
                    tol: Tolerance) -> tuple[bool | None, Mismatch | None]:
    """(None, None): nothing to compare; (True, None): all matched; (False, worst): diverged."""
    candidates = _float_values(names, values)
    verdict: bool | None = None
    worst: Mismatch | None = None
    for ref in tensors:
        same = [(n, v) for n, v in candidates if v.shape == ref.shape]
        if not same:
            ranked = [(n, v) for n, v in candidates if v.ndim == ref.ndim]
            if ranked and len(candidates) <= len(tensors):  # its only tensor(s), of another shape
                name, got = ranked[-1]
                worst = worst or Mismatch(name, tuple(ref.shape), tuple(got.shape))
                verdict = False
            continue
        checks = [(n, _check(ref, v, tol)) for n, v in same]
        name, best = min(checks, key=lambda c: (c[1].failing_elements, c[1].max_abs_err))
        if best.failing_elements == 0:
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


def _folded_match(events: list[Event], k: int, names: list[str], index: GraphIndex,
                  values: dict[str, np.ndarray], tol: Tolerance) -> bool:
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
        if other.kind == kind and compare_tensors(other.tensors, names, values, tol)[0] is True:
            return True
    return False


@dataclass
class Divergence:
    """The first diverging event; `compared` and `matched` count the events checked before it."""

    event: Event
    worst: Mismatch
    compared: int
    matched: int


def first_divergence(events: list[Event], index: GraphIndex, values: dict[str, np.ndarray],
                     tol: Tolerance) -> tuple[Divergence | None, int, int]:
    """(the first diverging event or None, events compared, events matched), in execution order.

    A diverging *input* (what a module passes to a child) counts only once the next compared
    event diverges too: a module called several times (SPPF's one MaxPool, three times) has
    its calls told apart by shape and value only, and a call matched to another call's tensor
    is followed by matches again.
    """
    compared = matched = 0
    pending: Divergence | None = None
    for k, event in enumerate(events):
        names = event_names(event, index)
        verdict, worst = compare_tensors(event.tensors, names, values, tol) if names else (None, None)
        if verdict is None:
            continue
        compared += 1
        if verdict or _folded_match(events, k, names, index, values, tol):
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
