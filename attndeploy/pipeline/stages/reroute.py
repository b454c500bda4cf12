"""Stage `reroute`: when the dynamo graph is wrong at other shapes, a second route to the requested opset.

The dynamo exporter can bake the sample's sizes into a graph that exports "successfully"
(a `.view(b, ...)` becomes a constant `Reshape`). When its graph fails parity and the
exporter was chosen automatically, the TorchScript exporter is tried at the same opset
and, where it cannot write it, at opset 17 with the graph upgraded by onnx's version
converter. A route's graph is verified, simplified and checked like any export; the first
that passes is kept and named (`route`); if none does, the dynamo result stands, with
what each route did in the notes.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import version_converter

from attndeploy.errors import first_line
from attndeploy.exporting.verify import verify
from attndeploy.pipeline.stages.export import export_graph
from attndeploy.pipeline.stages.parity import parity
from attndeploy.pipeline.stages.simplify import simplify
from attndeploy.pipeline.state import PipelineState

UPGRADE_FROM = 17


def wanted(state: PipelineState) -> bool:
    return (state.exporter == "dynamo" and state.settings.exporter == "auto"
            and not all(r.passed for r in state.parity.values()))


def _upgraded(state: PipelineState) -> onnx.ModelProto:
    proto = export_graph(state, "torchscript", UPGRADE_FROM)
    target = state.settings.opset
    upgraded = version_converter.convert_version(proto, target)
    verify(upgraded, target, f"torchscript (opset {UPGRADE_FROM}, upgraded)", state.input_name, state.dynamic_axes)
    return upgraded


def reroute(state: PipelineState) -> None:
    opset = state.settings.opset
    saved = (state.proto, state.exported, state.graphs, state.parity, state.simplify, state.rewrites,
             list(state.warnings))
    first = next(r for r in state.parity.values() if not r.passed).failure_message()
    state.notes.append(f"the dynamo graph fails parity ({first[:200]}); trying other routes to opset {opset}")
    routes: list[tuple[str, Callable[[], onnx.ModelProto]]] = [
        (f"torchscript-{opset}", lambda: export_graph(state, "torchscript", opset)),
        (f"torchscript-{UPGRADE_FROM}+version-converter-{opset}", lambda: _upgraded(state)),
    ]
    for route, make in routes:
        state.log(f"route {route}")
        try:
            state.proto = make()
            simplify(state)
            state.parity = {}
            parity(state)
        except Exception as err:  # a route that cannot be taken (an opset a lowering refuses ...): noted, next route
            state.notes.append(f"route {route}: {first_line(err, 200)}")
            continue
        if all(r.passed for r in state.parity.values()):
            state.exporter, state.route = "torchscript", route
            state.notes.append(f"route {route}: passed; the graph comes from this route")
            return
        state.notes.append(f"route {route}: fails parity too")
    state.proto, state.exported, state.graphs, state.parity, state.simplify, state.rewrites, state.warnings = saved
