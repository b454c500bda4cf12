"""Reduced-precision rules for `attndeploy lint --trt`: fp16 ops a TensorRT lacks, and explicit-quantization Q/DQ rules.

`reduced_precision_rules(model, support, constants, types)` yields (severity, rule, node,
message) for `attndeploy.lint.trt_lint`, which adds the module scope:

- `fp16-op`: a node computing float16 whose op has no FP16 implementation in that release
  (ConstantOfShape on 8.6);
- `qdq-type`: QuantizeLinear input / DequantizeLinear input types the release does not take
  (uint8 from onnxruntime's CPU flavour; int32 from its bias quantization, onnx-tensorrt#850);
- `qdq-zero-point`: a zero point that is not a constant 0 (TensorRT quantizes symmetrically);
- `qdq-scale`: a scale that is not a constant, or not positive and finite;
- `qdq-axis`: a per-channel scale on an activation (TensorRT: weights only), or on a weight
  along the wrong axis (Conv 0, ConvTranspose 1, MatMul B its last, Gemm B 1 or 0 with
  transB), or with a length other than that axis' size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from attndeploy.lint.findings import ERROR
from attndeploy.lint.trt_support import ParserSupport
from attndeploy.onnxgraph import all_graphs

Rule = tuple[str, str, onnx.NodeProto | None, str]
QDQ = ("QuantizeLinear", "DequantizeLinear")


def _type_name(elem: int) -> str:
    return TensorProto.DataType.Name(elem) if elem else "unknown"


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _weight_axis(reader: onnx.NodeProto, index: int, rank: int) -> int | None:
    """The output-channel axis of weight input `index` of `reader` (None: not a weight input)."""
    if index != 1:
        return None
    if reader.op_type == "Conv":
        return 0
    if reader.op_type == "ConvTranspose":
        return 1
    if reader.op_type == "MatMul":
        return rank - 1
    if reader.op_type == "Gemm":
        return 0 if _attr(reader, "transB", 0) else 1
    return None


class _QdqRules:
    def __init__(self, model: onnx.ModelProto, support: ParserSupport, constants: Mapping[str, TensorProto],
                 types: Mapping[str, int]) -> None:
        self.s, self.constants, self.types = support, constants, types
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for g in all_graphs(model.graph):
            for n in g.node:
                for i in n.input:
                    self.readers.setdefault(i, []).append(n)

    def value(self, name: str) -> np.ndarray | None:
        tensor = self.constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def types_of(self, node: onnx.NodeProto) -> Iterator[Rule]:
        quantize = node.op_type == "QuantizeLinear"
        allowed = self.s.quantize_inputs if quantize else self.s.dequantize_inputs
        data = node.input[0]
        elem = self.types.get(data) or (self.constants[data].data_type if data in self.constants else 0)
        if elem and elem not in allowed:
            why = (" (a quantized bias: onnxruntime's default, refused by TensorRT's parser, onnx-tensorrt#850; "
                   "quantize with QuantizeBias=False, as attndeploy's trt flavour does)" if elem == TensorProto.INT32
                   else " (asymmetric uint8: onnxruntime's CPU flavour; use the trt flavour)"
                   if elem == TensorProto.UINT8 else "")
            yield (ERROR, "qdq-type", node, f"{node.op_type} input {data!r} is {_type_name(elem)}: TensorRT "
                   f"{self.s.key} takes {', '.join(sorted(_type_name(t) for t in allowed))}{why}")

    def zero_point(self, node: onnx.NodeProto) -> Iterator[Rule]:
        if len(node.input) < 3 or not node.input[2]:
            return
        zp = self.value(node.input[2])
        if zp is None:
            yield (ERROR, "qdq-zero-point", node, f"zero point {node.input[2]!r} is computed: TensorRT needs a "
                   "constant 0")
        elif np.any(zp != 0):
            yield (ERROR, "qdq-zero-point", node, f"zero point {node.input[2]!r} holds {np.unique(zp)[:4].tolist()}: "
                   "TensorRT quantizes symmetrically (zero point 0); quantize with symmetric activations")

    def scale(self, node: onnx.NodeProto) -> Iterator[Rule]:
        scale = self.value(node.input[1]) if len(node.input) > 1 else None
        if scale is None:
            yield (ERROR, "qdq-scale", node, f"scale {node.input[1] if len(node.input) > 1 else ''!r} must be an "
                   "initializer or a Constant")
            return
        bad = scale[~(np.isfinite(scale) & (scale > 0))]
        if bad.size:
            yield (ERROR, "qdq-scale", node, f"scale {node.input[1]!r} must be positive and finite, holds "
                   f"{bad[:3].tolist()}")
        if scale.size > 1:
            yield from self.axis(node, scale.size)

    def axis(self, node: onnx.NodeProto, channels: int) -> Iterator[Rule]:
        data = node.input[0]
        weight = self.value(data)   # a constant: a weight (quantized for DQ, float for Q)
        if weight is None:
            yield (ERROR, "qdq-axis", node, f"per-channel scale ({channels} values) on the activation {data!r}: "
                   "TensorRT quantizes activations per tensor (one scale)")
            return
        axis = _attr(node, "axis", 1)
        axis = axis + weight.ndim if axis < 0 else axis
        if not 0 <= axis < weight.ndim or weight.shape[axis] != channels:
            yield (ERROR, "qdq-axis", node, f"{channels} scales along axis {axis} of the weight {data!r} "
                   f"{list(weight.shape)}: the scale length must equal that axis' size")
            return
        out = node.output[0] if node.op_type == "DequantizeLinear" else next(
            (r.output[0] for r in self.readers.get(node.output[0], []) if r.op_type == "DequantizeLinear"), "")
        for reader in self.readers.get(out, []):
            want = _weight_axis(reader, list(reader.input).index(out), weight.ndim)
            if want is not None and want != axis:
                yield (ERROR, "qdq-axis", node, f"per-channel weight of {reader.op_type} {reader.name!r} "
                       f"quantized along axis {axis}: its output channels are axis {want}")

    def fp16(self, node: onnx.NodeProto) -> Iterator[Rule]:
        if node.op_type in self.s.fp16_unsupported and any(self.types.get(o) == TensorProto.FLOAT16
                                                           for o in node.output):
            yield (ERROR, "fp16-op", node, f"{node.op_type} computes float16, which TensorRT {self.s.key} does "
                   "not implement for it: keep it fp32 (--keep-fp32) or cast its output")


def reduced_precision_rules(model: onnx.ModelProto, support: ParserSupport, constants: Mapping[str, TensorProto],
                            types: Mapping[str, int]) -> list[Rule]:
    """Every reduced-precision finding of `model` for `support` (see the module docstring).

    `constants`: initializers and Constant outputs by name; `types`: inferred element types.
    """
    rules = _QdqRules(model, support, constants, types)
    found: list[Rule] = []
    for graph in all_graphs(model.graph):
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type in QDQ:
                found += [*rules.types_of(node), *rules.zero_point(node), *rules.scale(node)]
            else:
                found += list(rules.fp16(node))
    return found


__all__ = ["reduced_precision_rules"]
