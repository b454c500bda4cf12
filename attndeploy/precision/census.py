"""How much of a reduced-precision graph runs at its precision: its weighted ops (Conv, MatMul, Gemm ...) counted.

    census(graph, "int8")  ->  (12, 14)     # 12 of 14 weighted ops take Q/DQ'd (INT8) inputs

A graph asked for at a precision must be at that precision: an "INT8" graph whose search
left everything float, or an "fp16" graph whose every weighted op kept float32, is not
what was asked for, and the verdict says so (`attndeploy.verdict.Budget.min_reduced_fraction`).

- int8: a weighted op counts when its data and weight inputs both come from a
  `DequantizeLinear` (the Q/DQ pattern TensorRT and onnxruntime fuse into an INT8 kernel),
  or it is a quantized operator itself (`QLinearConv`, `MatMulInteger` ...);
- fp16: a weighted op counts when its data input is float16 (after shape inference).
"""

from __future__ import annotations

import onnx

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "DeformConv"})
QUANTIZED_OPS = frozenset({"QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger"})


def _int8(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> bool:
    if node.op_type in QUANTIZED_OPS:
        return True
    inputs = [i for i in node.input[:2] if i]
    return len(inputs) == 2 and all(producers.get(i) is not None and producers[i].op_type == "DequantizeLinear"
                                    for i in inputs)


def census(model: onnx.ModelProto, precision: str) -> tuple[int, int]:
    """(weighted ops at `precision`, all weighted ops) of the main graph; `precision` "int8" or "fp16"."""
    graph = model.graph
    weighted = [n for n in graph.node if n.op_type in WEIGHTED_OPS | QUANTIZED_OPS]
    if precision == "int8":
        producers = {o: n for n in graph.node for o in n.output}
        return sum(_int8(n, producers) for n in weighted), len(weighted)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.input, *inferred.value_info, *inferred.output)}
    types.update({t.name: t.data_type for t in inferred.initializer})
    return sum(types.get(n.input[0]) == onnx.TensorProto.FLOAT16 for n in weighted), len(weighted)


__all__ = ["QUANTIZED_OPS", "WEIGHTED_OPS", "census"]
