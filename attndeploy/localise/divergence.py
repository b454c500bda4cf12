"""The graph side of localisation, without torch: which tensors to expose, the first divergence, whom to blame.

    graph = run_exposed(index, exposed_names(events, index), input_name, x)     # or any backend's values
    loc = locate_in_graph(events, twins, index, graph, budget, describe, x.shape, input_name)

`events` / `twins`: every module's entry and exit in eager fp32 and in float64 (recorded by
`attndeploy.module_events` on the workstation, or read from a bundle's module references on the
device); `describe(path, kind)` names a module (its class and source site: torch's
`nn.Module` on the workstation, the bundle's record on the device). An "out" event blames its
module (its children all matched), an "in" event the caller. When the backend failed at a
node and nothing diverged before that node's module finished, that module is blamed with
the runtime error.
"""

from __future__ import annotations

from collections.abc import Callable

from attndeploy.events import Event
from attndeploy.localise.graph import GraphIndex, GraphRun
from attndeploy.localise.match import Divergence, event_names, first_divergence
from attndeploy.localise.report import Localisation, reshape_notes
from attndeploy.verdict import Budget

Describe = Callable[[str, str], Localisation]   # (module path, kind) -> its Localisation (class, source site)


def exposed_names(events: list[Event], index: GraphIndex) -> list[str]:
    """Every graph tensor that carries a module event, then the graph's outputs (in graph order, once each)."""
    names: dict[str, None] = {}
    for event in events:
        names.update(dict.fromkeys(event_names(event, index)))
    names.update(dict.fromkeys(o.name for o in index.proto.graph.output))
    return list(names)


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


def blame(describe: Describe, events: list[Event], index: GraphIndex, graph: GraphRun, found: Divergence | None,
          x_shape: tuple[int, ...], input_name: str) -> Localisation | None:
    """The module to blame for `found` (or for the node the backend failed at), with its ONNX nodes; None if neither."""
    failed_scope = index.scopes[graph.failed_node] if graph.failed_node >= 0 else None
    if found is not None and (failed_scope is None or found.event.index < _first_exit(events, failed_scope)):
        event, worst = found.event, found.worst
        loc = describe(event.owner, "output" if event.kind == "out" else "input")
        loc.input_shape = x_shape
        loc.child = _first_callee(events, event.index, index) if event.kind == "in" else ""
        loc.graph_tensor, loc.max_abs, loc.index = worst.tensor, worst.max_abs, worst.index
        loc.shape, loc.got_shape = worst.shape, worst.got_shape
        loc.folded = folded_into(events, event.index, index) if event.kind == "out" else []
    elif failed_scope is not None:
        loc = describe(failed_scope, "runtime")
        loc.input_shape = x_shape
        loc.failed_node, loc.error = index.proto.graph.node[graph.failed_node].name, graph.error
    else:
        return None
    loc.nodes = [(n.name, n.op_type) for n in index.own(loc.path)]
    loc.notes = reshape_notes(index, index.own(loc.path), input_name, x_shape, loc.failed_node)
    return loc


def locate_in_graph(events: list[Event], twins: list[Event], index: GraphIndex, graph: GraphRun, budget: Budget,
                    describe: Describe, x_shape: tuple[int, ...], input_name: str) -> Localisation | None:
    """The first module whose graph tensors `graph.values` break `budget` against `events` (float64 `twins`; empty:
    judged against eager fp32 itself), or the module the backend failed in; None when everything matched."""
    found, compared, matched = first_divergence(events, twins, index, graph.values, budget)
    loc = blame(describe, events, index, graph, found, x_shape, input_name)
    if loc is not None:
        loc.compared, loc.matched = compared, matched
    return loc


__all__ = ["Describe", "blame", "exposed_names", "folded_into", "locate_in_graph"]
