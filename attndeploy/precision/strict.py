"""Strict-fp16 evaluation: run a mixed fp16 graph with every float16 tensor rounded, as fp16 hardware would.

onnxruntime's CPU EP has no fp16 kernel for Conv, MatMul, Softmax, Add ... : it wraps such
nodes in Casts and computes in fp32, and where consecutive nodes all lack a kernel it
drops the Casts between them, so values past 65504 (an all-fp16 SAGAN's attention
energies at input x100: ~8.6e4) never become inf. `strict_fp16_model(model)` is the
equivalent evaluation mode that cannot hide it: the same graph with every float16 type
made float32 (float16 initializers and constants widened exactly), and after every node
that writes a float16 tensor a rounding pair `Cast(to=float16) -> Cast(to=float32)`, so
each float16 tensor holds exactly the float16 value (inf past 65504) while each node
computes in fp32 (as TensorRT's fp16 kernels accumulate). Tensor names are kept, and the
rounding Casts carry their node's scope, so module boundaries map as in the original.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from attndeploy.runtimes.onnxruntime_runner import ort_session

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
_TYPE_ATTRS = {"Cast": "to", "EyeLike": "dtype", "RandomNormal": "dtype", "RandomUniform": "dtype",
               "RandomNormalLike": "dtype", "RandomUniformLike": "dtype"}


def _widen_tensor(t: TensorProto) -> TensorProto:
    if t.data_type != FLOAT16:
        return t
    return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)


def _float16_outputs(model: onnx.ModelProto) -> set[str]:
    """Names of the tensors the graph types float16 (by ONNX type inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    found = {v.name for v in (*g.input, *g.output, *g.value_info) if v.type.tensor_type.elem_type == FLOAT16}
    found |= {t.name for t in g.initializer if t.data_type == FLOAT16}
    return found


def strict_fp16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float32 emulation of mixed fp16 `model` with each float16 tensor rounded (see the module docstring).

    Graph inputs and outputs keep their shapes; float16 ones become float32.
    `input: (N, C, H, W) float32 -> outputs as in model, float32`.
    """
    halves = _float16_outputs(model)
    strict = onnx.ModelProto()
    strict.CopyFrom(model)
    g = strict.graph
    widened = [_widen_tensor(t) for t in g.initializer]
    del g.initializer[:]
    g.initializer.extend(widened)
    for value in (*g.input, *g.output):
        if value.type.tensor_type.elem_type == FLOAT16:
            value.type.tensor_type.elem_type = FLOAT
    del g.value_info[:]
    nodes: list[onnx.NodeProto] = []
    for node in g.node:
        for attr in node.attribute:
            if attr.name == _TYPE_ATTRS.get(node.op_type) and attr.i == FLOAT16:
                attr.i = FLOAT
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT16:
                attr.t.CopyFrom(_widen_tensor(attr.t))
        rounded = [i for i, out in enumerate(node.output) if out and out in halves]
        finals = {i: node.output[i] for i in rounded}
        for i in rounded:
            node.output[i] = f"{finals[i]}__exact"
        nodes.append(node)
        for i, final in finals.items():
            label = f"{node.name}_{i}" if node.name and len(node.output) > 1 else node.name or final
            down = helper.make_node("Cast", [f"{final}__exact"], [f"{final}__fp16"], name=f"{label}__round_fp16",
                                    to=FLOAT16)
            up = helper.make_node("Cast", [f"{final}__fp16"], [final], name=f"{label}__round_fp32", to=FLOAT)
            for cast in (down, up):
                cast.metadata_props.extend(node.metadata_props)
            nodes += [down, up]
    del g.node[:]
    g.node.extend(nodes)
    return strict


def run_each(model: onnx.ModelProto | bytes, feeds: Sequence[dict[str, np.ndarray]], level: str = "all",
             outputs: Sequence[str] | None = None) -> list[list[np.ndarray]]:
    """`model` on each of `feeds` in one onnxruntime CPU session (all cores); float outputs as float32 arrays."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort_session(data, 0, ("CPUExecutionProvider",), level=level)
    names = list(outputs) if outputs else None
    return [[np.asarray(r, np.float32) if np.issubdtype(np.asarray(r).dtype, np.floating) else np.asarray(r)
             for r in session.run(names, f)] for f in feeds]


def run_model(model: onnx.ModelProto | bytes, feeds: dict[str, np.ndarray], level: str = "all",
              outputs: Sequence[str] | None = None) -> list[np.ndarray]:
    """`model` on `feeds` in onnxruntime CPU (all cores); float outputs as float32 arrays."""
    return run_each(model, [feeds], level, outputs)[0]


def run_strict(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Mixed fp16 `model` in strict-fp16 evaluation (graph optimizations off: every rounding pair stays)."""
    return run_model(strict_fp16_model(model), feeds, level="none")


__all__ = ["run_each", "run_model", "run_strict", "strict_fp16_model"]
