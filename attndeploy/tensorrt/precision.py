"""fp16 engines that keep the overflow-prone ops in fp32, for both TensorRT API generations.

Which ops stay fp32 (`fp32_plan`):
- Softmax / LogSoftmax, LayerNormalization, every Reduce* (sums over H·W overflow fp16);
- the decomposed LayerNorm of opsets < 17 (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div);
- GridSample and the coordinate arithmetic feeding its grid (deformable convolution's
  opset < 19 form: fp16 cannot hold pixel positions precisely);
- the MatMul (and the Mul/Div/Reshape/Transpose... between them) feeding a Softmax, and
  the query/key projections feeding that MatMul: unscaled attention energies reach ~9e4
  (SAGAN, non-local), past fp16's 65504, and fp16-rounded q, k shift the softmax.

TensorRT 8.6 / 10 (weakly typed): `BuilderFlag.FP16` plus `apply_fp32_plan(network, plan)`,
which sets `layer.precision` and the output types of the matching layers to fp32 (the
builder then needs OBEY_ or PREFER_PRECISION_CONSTRAINTS).
TensorRT 11 (strongly typed, no FP16 flag): `convert_onnx_to_fp16(model)` rewrites the
graph itself (see `attndeploy.tensorrt.fp16_onnx`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import onnx

from attndeploy.lint.trt_support import REDUCE_OPS

if TYPE_CHECKING:
    import tensorrt as trt

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
              attention_energies: bool = True, layernorm_decomposition: bool = True,
              sampling_grids: bool = True) -> list[Fp32Pin]:
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
    if attention_energies and keep & {"Softmax", "LogSoftmax"}:
        for path in _energy_paths(model, nodes):
            for node in path:
                reasons.setdefault(id(node), "attention energies feeding Softmax (overflow fp16)")
    if sampling_grids:
        for path in _grid_paths(model, nodes):
            for node in path:
                reasons.setdefault(id(node), "sampling coordinates feeding GridSample (fp16 rounds positions)")
    return [Fp32Pin(node_label(n), n.op_type, reasons[id(n)], tuple(o for o in n.output if o))
            for n in nodes if id(n) in reasons]


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


def convert_onnx_to_fp16(model: onnx.ModelProto, keep_fp32_ops: Iterable[str] = KEEP_FP32_OPS,
                         keep_io_types: bool = True) -> onnx.ModelProto:
    """fp16 copy of `model` with the `fp32_plan` nodes in fp32 and Casts at every boundary.

    Graph inputs and outputs stay float32 when `keep_io_types` (Casts at the edges), so the
    runner that feeds the fp32 model feeds this one. Input and output shapes are unchanged:
    `input: (N, C, H, W) float32 -> output: (N, C', H', W') float32`.
    """
    from attndeploy.tensorrt.fp16_onnx import convert

    return convert(model, keep_fp32_ops, keep_io_types)
