"""Every float tensor of a graph at once: the values the fp16 search compares, node by node.

`float_values(model, feeds)` runs `model` with every float tensor a node writes exposed as
an extra graph output (in chunks, so a large detector does not hold one huge session) and
returns `{tensor name: float32 array}`. Used on the fp32 graph (the reference values, and
how large each tensor gets) and on the strict-fp16 graph (the same tensor names).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from attndeploy.precision.strict import run_model

CHUNK = 400


def float_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of the float32/float16 tensors the nodes of `model` write, in graph order (Constants excluded)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16)
    return [o for n in model.graph.node if n.op_type != "Constant" for o in n.output if o and types.get(o) in floats]


def float_values(model: onnx.ModelProto, feeds: dict[str, np.ndarray], names: list[str] | None = None,
                 level: str = "none") -> dict[str, np.ndarray]:
    """{tensor: value} for `names` (default: every float tensor) of `model` on `feeds` (float32 arrays).

    `level`: onnxruntime's graph optimization ("none" keeps every node, so every tensor exists).
    """
    names = float_tensors(model) if names is None else names
    values: dict[str, np.ndarray] = {}
    for start in range(0, len(names), CHUNK):
        chunk = names[start:start + CHUNK]
        exposed = onnx.ModelProto()
        exposed.CopyFrom(model)
        del exposed.graph.output[:]
        exposed.graph.output.extend(
            next((o for o in model.graph.output if o.name == n), None) or helper.make_empty_tensor_value_info(n)
            for n in chunk)
        arrays = run_model(exposed, feeds, level=level, outputs=chunk)
        values.update({n: a.astype(np.float32, copy=False) for n, a in zip(chunk, arrays)})
    return values


__all__ = ["float_tensors", "float_values"]
