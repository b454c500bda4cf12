"""Which ONNX nodes of a graph stay fp32 in a mixed fp16 graph (the fp32 plan), and what precision a graph holds.

`fp32_plan(model)` pins, each with its reason:
- Softmax / LogSoftmax, LayerNormalization, every Reduce* (sums over H·W overflow fp16);
- the decomposed LayerNorm of opsets < 17 (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div);
- GridSample and the coordinate arithmetic feeding its grid (deformable convolution's
  opset < 19 form: fp16 cannot hold pixel positions precisely);
- the MatMul (and the Mul/Div/Reshape/Transpose... between them) feeding a Softmax, and
  the query/key projections feeding that MatMul: unscaled attention energies reach ~9e4
  (SAGAN, non-local), past fp16's 65504, and fp16-rounded q, k shift the softmax.

Users: the fp16 converter (`attndeploy.precision.fp16`), the automatic search's starting
point (`attndeploy.precision.search`), and TensorRT 8.6 / 10's FP16-flag path, which pins
the planned layers (`attndeploy.tensorrt.precision.apply_fp32_plan`).

A graph that already carries its precision (a mixed fp16 graph, or explicit Q/DQ int8):
`graph_precision` says which; on a weakly typed TensorRT (8.6) `graph_fp32_plan` lists
the nodes the graph computes in float32, so the FP16 flag cannot move them to fp16.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import onnx

from attndeploy.lint.trt_support import REDUCE_OPS

KEEP_FP32_OPS: frozenset[str] = frozenset({"Softmax", "LogSoftmax", "LayerNormalization", *REDUCE_OPS})
# Between an attention MatMul and its Softmax: scaling, masking and re-layout.
_ENERGY_PATH_OPS = frozenset({"Mul", "Div", "Add", "Sub", "Reshape", "Transpose", "Cast", "Identity", "Squeeze",
                              "Unsqueeze", "Flatten", "Neg", "Where"})
_ENERGY_SOURCES = frozenset({"MatMul", "Gemm", "Einsum"})
_LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast", "MaxPool",
                         "AveragePool"})
_PROJECTIONS = frozenset({"Conv", "MatMul", "Gemm"})
# Arithmetic on sampling coordinates (base grid + offsets, normalisation) before a GridSample.
_GRID_PATH_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Neg", "Reshape", "Transpose", "Concat", "Unsqueeze",
                            "Squeeze", "Flatten", "Cast", "Gather", "Slice", "Split", "Range", "Expand", "Tile",
                            "Identity", "Where", "Clip", "Floor", "Ceil"})
_FOLLOW = {"Reshape": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Where": (1, 2)}  # data inputs only


@dataclass(frozen=True)
class Fp32Pin:
    """One ONNX node to compute in fp32, and why. `node` is the name the TensorRT parser gives its layers."""

    node: str
    op_type: str
    reason: str
    outputs: tuple[str, ...]


def node_label(node: onnx.NodeProto) -> str:
    """The node's name as the TensorRT parser reports it (`node_of_<first output>` when unnamed)."""
    if node.name or not node.output:
        return node.name
    return f"node_of_{node.output[0]}"


def _index(model: onnx.ModelProto, nodes: list[onnx.NodeProto]
           ) -> tuple[dict[str, onnx.NodeProto], dict[str, list[onnx.NodeProto]], set[str]]:
    producer = {o: n for n in nodes for o in n.output if o}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in nodes if n.op_type == "Constant" for o in n.output}
    return producer, consumers, constants


def _layernorm_decompositions(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> list[list[onnx.NodeProto]]:
    """Each match of ReduceMean -> Sub -> Pow -> ReduceMean -> Add -> Sqrt -> Div (LayerNorm below opset 17)."""
    producer, consumers, _ = _index(model, nodes)
    matches = []
    def made_by(tensor: str, op: str) -> onnx.NodeProto | None:
        node = producer.get(tensor)
        return node if node is not None and node.op_type == op else None

    for sqrt in (n for n in nodes if n.op_type == "Sqrt"):
        add = made_by(sqrt.input[0], "Add")
        var = made_by(next((i for i in add.input if i in producer), ""), "ReduceMean") if add else None
        pow_ = made_by(var.input[0], "Pow") if var else None
        sub = made_by(pow_.input[0], "Sub") if pow_ else None
        mean = made_by(sub.input[1], "ReduceMean") if sub is not None and len(sub.input) > 1 else None
        if add is None or var is None or pow_ is None or sub is None or mean is None or mean.input[0] != sub.input[0]:
            continue
        divs = [d for d in consumers.get(sqrt.output[0], []) if d.op_type == "Div" and d.input[0] == sub.output[0]]
        if divs:
            matches.append([mean, sub, pow_, var, add, sqrt, *divs])
    return matches


def _walk(tensors: list[str], producer: dict[str, onnx.NodeProto], constants: set[str], through: frozenset[str],
          sources: frozenset[str]) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """Walk producers back from `tensors` through `through` ops; returns (path, the `sources` reached)."""
    path: list[onnx.NodeProto] = []
    found: list[onnx.NodeProto] = []
    frontier, seen = list(tensors), set()
    while frontier:
        tensor = frontier.pop()
        node = producer.get(tensor)
        if node is None or tensor in constants or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in sources:
            found.append(node)
        elif node.op_type in through:
            path.append(node)
            picks = _FOLLOW.get(node.op_type, range(len(node.input)))
            frontier.extend(node.input[k] for k in picks if k < len(node.input) and node.input[k])
    return path, found


def _energy_paths(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> list[list[onnx.NodeProto]]:
    """For each Softmax fed by a MatMul: that MatMul, the ops in between, and the projections feeding it.

    The query/key projections (1x1 convs, Linear) are included: rounding q and k to fp16
    already moves energies of magnitude ~100 by ~0.05, enough to shift a softmax by 1e-2.
    """
    producer, _, constants = _index(model, nodes)
    paths = []
    for softmax in (n for n in nodes if n.op_type in ("Softmax", "LogSoftmax")):
        path, matmuls = _walk([softmax.input[0]], producer, constants, _ENERGY_PATH_OPS, _ENERGY_SOURCES)
        if not matmuls:
            continue
        for matmul in matmuls:
            layout, projections = _walk(list(matmul.input), producer, constants, _LAYOUT_OPS, _PROJECTIONS)
            path += [matmul, *(layout if projections else []), *projections]
        paths.append(path)
    return paths


def _grid_paths(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> list[list[onnx.NodeProto]]:
    """Each GridSample with the coordinate arithmetic feeding its grid (up to, not into, convs).

    fp16 spacing is 0.03 px at x ~ 56 and 1 px past 2048: rounded coordinates move every
    bilinear weight (the GridSample form of deformable convolution fails fp16 parity).
    """
    producer, _, constants = _index(model, nodes)
    paths = []
    for sample in (n for n in nodes if n.op_type == "GridSample" and len(n.input) > 1):
        path, _ = _walk([sample.input[1]], producer, constants, _GRID_PATH_OPS, frozenset())
        paths.append([sample, *path])
    return paths


def fp32_plan(model: onnx.ModelProto, keep_fp32_ops: Iterable[str] = KEEP_FP32_OPS,
              layernorm_decomposition: bool = True) -> list[Fp32Pin]:
    """The nodes of `model` to keep in fp32, in graph order, each with its reason."""
    keep = frozenset(keep_fp32_ops)
    nodes = list(model.graph.node)  # one wrapper per node: protobuf hands out new ones on each access
    reasons: dict[int, str] = {}
    for node in nodes:
        if node.op_type in keep:
            reasons[id(node)] = f"{node.op_type} (in keep_fp32_ops)"
    if layernorm_decomposition:
        for match in _layernorm_decompositions(model, nodes):
            for node in match:
                reasons.setdefault(id(node), "LayerNormalization decomposition (opset < 17)")
    if keep & {"Softmax", "LogSoftmax"}:
        for path in _energy_paths(model, nodes):
            for node in path:
                reasons.setdefault(id(node), "attention energies feeding Softmax (overflow fp16)")
    for path in _grid_paths(model, nodes):
        for node in path:
            reasons.setdefault(id(node), "sampling coordinates feeding GridSample (fp16 rounds positions)")
    return [Fp32Pin(node_label(n), n.op_type, reasons[id(n)], tuple(o for o in n.output if o))
            for n in nodes if id(n) in reasons]


QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
_TYPE_ONLY_OPS = frozenset({"Cast", "CastLike", "Constant", "Shape", "Size", "Identity", *QDQ_OPS})


def holds_fp16(model: onnx.ModelProto) -> bool:
    """Whether the graph stores or computes float16 tensors (initializers, typed values, Casts to float16)."""
    g, fp16 = model.graph, onnx.TensorProto.FLOAT16
    return (any(t.data_type == fp16 for t in g.initializer)
            or any(v.type.tensor_type.elem_type == fp16 for v in (*g.input, *g.output, *g.value_info))
            or any(a.name == "to" and a.i == fp16 for n in g.node if n.op_type == "Cast" for a in n.attribute))


def graph_precision(model: onnx.ModelProto) -> str:
    """"int8" for a graph with explicit Q/DQ, "fp16" for one holding float16 tensors, else "fp32"."""
    if any(n.op_type in QDQ_OPS for n in model.graph.node):
        return "int8"
    return "fp16" if holds_fp16(model) else "fp32"


def graph_fp32_plan(model: onnx.ModelProto) -> list[Fp32Pin]:
    """The nodes of a reduced-precision graph that compute in float32 (a float32 output), in graph order.

    Casts, Q/DQ and shape ops are left out: they only carry types. Pinned on a weakly typed
    network, these layers keep the precision the graph was verified with.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
    float32 = onnx.TensorProto.FLOAT
    return [Fp32Pin(node_label(n), n.op_type, "float32 in the reduced-precision graph", tuple(o for o in n.output if o))
            for n in g.node if n.op_type not in _TYPE_ONLY_OPS and any(types.get(o) == float32 for o in n.output)]
