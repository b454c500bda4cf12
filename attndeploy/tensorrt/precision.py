"""fp16 engines from an fp32 graph on TensorRT 8.6 / 10 (weakly typed): the fp32 plan applied to the network's layers.

`BuilderFlag.FP16` plus `apply_fp32_plan(network, plan)`, which sets `layer.precision` and
the output types of the layers that come from the planned ONNX nodes
(`attndeploy.precision.plan.fp32_plan`, or `graph_fp32_plan` for a graph that carries its
precision) to fp32 (the builder then needs OBEY_ or PREFER_PRECISION_CONSTRAINTS).
TensorRT 11 (strongly typed, no FP16 flag) builds the mixed fp16 ONNX graph of
`attndeploy.precision.fp16.convert_onnx_to_fp16` instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from attndeploy.precision.plan import Fp32Pin

if TYPE_CHECKING:
    import tensorrt as trt

_METADATA = re.compile(r"\[ONNX Layer: ([^|\]]+)")
_SUFFIX = re.compile(r"^(.*)_(\d+)$")


def layer_node_name(name: str, metadata: str) -> tuple[str, str | None]:
    """(name, name without the parser's `_<n>` uniquifying suffix) of the ONNX node behind a layer.

    The 8.6+ parser stores `[ONNX Layer: <node name> | ...]` in `layer.metadata`; older ones
    only name layers after their node (`/attn/Softmax`, `/attn/Softmax_1`, ...).
    """
    match = _METADATA.search(metadata or "")
    if match:
        return match.group(1).strip(), None
    suffix = _SUFFIX.match(name)
    return name, suffix.group(1) if suffix else None


def apply_fp32_plan(network: trt.INetworkDefinition, plan: Sequence[Fp32Pin]) -> list[str]:
    """Pin every layer of `network` that comes from a planned node to fp32; returns the layer names.

    Weakly typed networks only (TensorRT 8.6/10): sets `layer.precision` and the type of
    each float output. The builder config must also set FP16 and OBEY_ (or PREFER_)
    PRECISION_CONSTRAINTS. Constant, shape and cast layers are left alone.
    """
    import tensorrt as trt

    nodes = {p.node for p in plan}
    outputs = {o for p in plan for o in p.outputs}
    skip = {trt.LayerType.CONSTANT, trt.LayerType.SHAPE, getattr(trt.LayerType, "CAST", None)}  # CAST: 8.6+
    floats = {trt.float32, trt.float16}
    pinned: list[str] = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in skip:
            continue
        name, base = layer_node_name(layer.name, getattr(layer, "metadata", ""))  # metadata: TensorRT >= 8.6
        out_names = {layer.get_output(j).name for j in range(layer.num_outputs)}
        if not (name in nodes or (base is not None and base in nodes) or out_names & outputs):
            continue
        float_outputs = [j for j in range(layer.num_outputs) if layer.get_output(j).dtype in floats]
        if not float_outputs:
            continue
        layer.precision = trt.float32
        for j in float_outputs:
            layer.set_output_type(j, trt.float32)
        pinned.append(layer.name)
    return pinned
