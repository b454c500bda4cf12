"""Stage `simplify`: onnxsim, then the fp32 `Graph` the parity stage checks.

onnxsim's own numeric check compares on random inputs with a fixed tolerance (which rejects
models with large outputs); here the simplified graph is checked by the parity stage
itself, against eager at every parity shape with the model's tolerance, and where it fails
while the unsimplified export passes, the export is kept and onnxsim is named
(`parity.fall_back_to_export`). A graph with TensorRT plugin nodes is run for parity with
each plugin node swapped for the equivalent standard ONNX op; the file keeps the plugin nodes.
"""

from __future__ import annotations

import onnx

from attndeploy.exporting.output_dims import pin_static_output_dims
from attndeploy.exporting.simplify import simplify as simplify_model
from attndeploy.lowering.deformconv import PLUGIN_DOMAIN, plugin_nodes_to_onnx
from attndeploy.pipeline.state import Graph, PipelineState


def runnable(proto: onnx.ModelProto) -> bytes:
    """What onnxruntime runs for `proto`: its TensorRT plugin nodes swapped for the equivalent standard ONNX ops."""
    has_plugins = any(n.domain == PLUGIN_DOMAIN for n in proto.graph.node)
    return (plugin_nodes_to_onnx(proto) if has_plugins else proto).SerializeToString()


def fp32_graph(state: PipelineState, proto: onnx.ModelProto) -> Graph:
    """The fp32 `Graph` of `proto` (runnable: plugin nodes swapped for standard ops).

    Output dims the adapter did not declare dynamic (a YOLO's 4 + nc axis) are pinned to their
    size where the exporter left a symbol (`exporting.output_dims`).
    """
    if state.output_axes:
        for note in pin_static_output_dims(proto, state.output_axes, state.output_shapes):
            state.log(note)
    return Graph("fp32", proto, state.settings.resolved_out_path(state.name), runnable(proto))


def simplify(state: PipelineState) -> None:
    proto = state.proto
    assert proto is not None
    state.exported = proto
    if state.settings.simplify:
        state.log("simplifying with onnxsim (checked by the parity stage)")
        simplified, state.simplify = simplify_model(proto, state.input_name, state.shape)
        state.proto = proto = simplified
    state.graphs = [fp32_graph(state, proto)]
