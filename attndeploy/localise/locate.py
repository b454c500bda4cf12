"""`localise_divergence`: the first PyTorch module whose output the ONNX graph gets wrong.

1. eager: every module's float inputs and outputs in execution order, in fp32 and in float64
   (`Truth.module_runs`: the truth runs the model, nothing here does);
2. graph: `index_graph` — every node's module path, each module's boundary tensors;
   `run_exposed` — those tensors as extra outputs, one onnxruntime run (a node failing at
   this shape is cut off and the rest rerun);
3. `first_divergence` — the first event past the verdict's rule (the graph tensor's distance
   to float64 against eager fp32's), non-finite or of another shape. An
   "out" event blames its module (its children all matched), an "in" event the caller.
   When onnxruntime failed at a node and nothing diverged before that node's module
   finished, that module is blamed with the runtime error.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
from torch import nn

from attndeploy.localise.graph import GraphIndex, GraphRun, index_graph, run_exposed
from attndeploy.localise.match import Divergence, event_names, first_divergence
from attndeploy.localise.report import Localisation, reshape_notes
from attndeploy.module_events import EagerRun, Event
from attndeploy.modulepath import class_site, forward_site
from attndeploy.verdict import Budget


def _exposed_names(run: EagerRun, index: GraphIndex) -> list[str]:
    names: dict[str, None] = {}
    for event in run.events:
        names.update(dict.fromkeys(event_names(event, index)))
    names.update(dict.fromkeys(o.name for o in index.proto.graph.output))
    return list(names)


def _describe(path: str, model: nn.Module, run: EagerRun, kind: str, x_shape: tuple[int, ...]) -> Localisation:
    cls = type(run.modules.get(path, model))
    file, line = class_site(cls)
    return Localisation(path, cls.__name__, file, line, forward_site(cls)[1], kind, x_shape)


def folded_into(events: list[Event], k: int, index: GraphIndex) -> list[str]:
    """Node-less modules that ran right before or right after the module of "out" event k (folded into it)."""
    path = events[k].path
    start = max((e.index for e in events[:k] if e.kind == "in" and e.path == path), default=k)
    found: list[str] = []
    for step, first in ((-1, start - 1), (1, k + 1)):
        i = first
        while 0 <= i < len(events) and not index.has_nodes(events[i].path):
            if events[i].kind == "out" and events[i].path not in found:
                found.append(events[i].path)
            i += step
    return found


def _first_callee(events: list[Event], k: int, index: GraphIndex) -> str:
    """The module "in" event k enters, or the first node-less one called right before it (folded into it)."""
    callee = events[k].path
    i = k - 1
    while i >= 0 and not index.has_nodes(events[i].path):
        if events[i].kind == "in":
            callee = events[i].path
        i -= 1
    return callee


def _first_exit(events: list[Event], path: str) -> int:
    return next((e.index for e in events if e.kind == "out" and e.path == path), len(events))


def _blame(model: nn.Module, run: EagerRun, index: GraphIndex, graph: GraphRun, found: Divergence | None,
           x_shape: tuple[int, ...], input_name: str) -> Localisation | None:
    failed_scope = index.scopes[graph.failed_node] if graph.failed_node >= 0 else None
    if found is not None and (failed_scope is None or found.event.index < _first_exit(run.events, failed_scope)):
        event, worst = found.event, found.worst
        loc = _describe(event.owner, model, run, "output" if event.kind == "out" else "input", x_shape)
        loc.child = _first_callee(run.events, event.index, index) if event.kind == "in" else ""
        loc.graph_tensor, loc.max_abs, loc.index = worst.tensor, worst.max_abs, worst.index
        loc.shape, loc.got_shape = worst.shape, worst.got_shape
        loc.folded = folded_into(run.events, event.index, index) if event.kind == "out" else []
    elif failed_scope is not None:
        loc = _describe(failed_scope, model, run, "runtime", x_shape)
        loc.failed_node, loc.error = index.proto.graph.node[graph.failed_node].name, graph.error
    else:
        return None
    loc.nodes = [(n.name, n.op_type) for n in index.own(loc.path)]
    loc.notes = reshape_notes(index, index.own(loc.path), input_name, x_shape, loc.failed_node)
    return loc


def localise_divergence(model: nn.Module, runs: tuple[EagerRun, EagerRun | None], proto: onnx.ModelProto,
                        x: np.ndarray, input_name: str, budget: Budget) -> Localisation | None:
    """The first module of `model` whose output `proto` gets wrong on input `x`, or None.

    `runs`: every module's events on `x` in eager fp32 and in float64 (None where the model
    cannot run in float64: `budget` then judges against eager fp32 itself). `proto`: the
    graph exported from it (before onnxsim: its node names and scopes are the exporter's),
    with one input `input_name`. `x`: float32 (N, C, H, W) (any shape the model takes) at
    which the verdict failed. None when every module's output matches (or none could be
    mapped to the graph, or the graph cannot be run at all).
    """
    start = time.perf_counter()
    run, run64 = runs
    index = index_graph(proto, run.modules, run.calls)
    graph = run_exposed(index, _exposed_names(run, index), input_name, np.asarray(x, np.float32))
    twins = run64.events if run64 is not None else []
    found, compared, matched = first_divergence(run.events, twins, index, graph.values, budget)
    loc = _blame(model, run, index, graph, found, tuple(x.shape), input_name)
    if loc is not None:
        loc.compared, loc.matched = compared, matched
        loc.seconds = time.perf_counter() - start
    return loc
