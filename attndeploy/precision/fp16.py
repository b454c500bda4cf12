"""ONNX fp32 -> mixed fp16: the graph a strongly typed TensorRT (11.x has no FP16 flag) and onnxruntime run.

Rules, per node in graph order (types come from ONNX shape inference and the op schemas):
- a node kept in fp32 (the fp32 plan `plan.fp32_plan`, the `keep_nodes` of a keep-fp32
  policy or of the automatic search), of a custom domain, or with a schema
  that cannot take float16 computes in fp32: every float input is cast to float32;
- any other node computes in fp16: every float input whose type constraint allows
  float16 becomes float16 (inputs fixed to `tensor(float)`, like Resize's scales, stay
  float32); outputs bound to a converted constraint become float16;
- Shape, Size and Cast take whatever arrives (no cast: their output type does not
  depend on it); Range stays fp32 (index arithmetic loses integers past 2048 in fp16);
- float initializers and Constant tensors are stored in the precision their consumers
  need (an fp16 copy clipped to ±65504 when both need them); other tensors get one
  shared Cast node per (tensor, type);
- graph inputs and outputs keep their float32 type (`keep_io_types`): Casts at the edges.
Control flow (If, Loop, Scan) is refused: outer-scope tensors inside subgraphs would need
the same rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from attndeploy.errors import UsageError
from attndeploy.precision.plan import KEEP_FP32_OPS, fp32_plan

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
FLOATS = (FLOAT, FLOAT16)
_NEUTRAL = frozenset({"Shape", "Size", "Cast"})
_ALWAYS_FP32 = frozenset({"Range"})
_FP16_MAX = float(np.finfo(np.float16).max)


def _schema(node: onnx.NodeProto, opset: int) -> onnx.defs.OpSchema | None:
    if node.domain not in ("", "ai.onnx"):
        return None
    try:
        return onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def _formal(params: list[onnx.defs.OpSchema.FormalParameter], index: int) -> str | None:
    if not params:
        return None
    if index < len(params):
        return params[index].type_str
    last = params[-1]
    return last.type_str if last.option == onnx.defs.OpSchema.FormalParameterOption.Variadic else None


class _Converter:
    def __init__(self, model: onnx.ModelProto, keep: set[str], keep_io_types: bool) -> None:
        self.m, self.keep_io = model, keep_io_types
        self.keep = keep
        g = model.graph
        self.opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        inferred = onnx.shape_inference.infer_shapes(model)
        self.original = {v.name: v.type.tensor_type.elem_type
                         for v in (*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info)}
        self.values: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer
                                              if t.data_type == FLOAT}
        for n in g.node:
            if n.op_type == "Constant" and n.output:
                attr = next((a for a in n.attribute if a.name == "value"), None)
                if attr is not None and attr.t.data_type == FLOAT:
                    self.values[n.output[0]] = numpy_helper.to_array(attr.t)
        self.home: dict[str, int] = {t.name: t.data_type for t in g.initializer}
        self.home.update({k: FLOAT for k in self.values})
        for v in g.input:
            self.home.setdefault(v.name, v.type.tensor_type.elem_type)
        self.producers = {o: n for n in g.node for o in n.output if o}
        self.nodes: list[onnx.NodeProto] = []
        self.casts: dict[tuple[str, int], str] = {}
        self.new_initializers: list[TensorProto] = []
        self.names = {o for n in g.node for o in n.output} | {i for n in g.node for i in n.input} | set(self.home)

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def cast_node(self, tensor: str, out: str, want: int, consumer: onnx.NodeProto | None) -> onnx.NodeProto:
        """A Cast named and scoped after the node that made `tensor` (the consumer for graph inputs)."""
        owner = self.producers.get(tensor) or consumer
        base = owner.name if owner is not None and owner.name.startswith("/") else tensor
        suffix = "fp16" if want == FLOAT16 else "fp32"
        cast = helper.make_node("Cast", [tensor], [out], name=self.unique(f"{base}__cast_{suffix}"), to=want)
        if owner is not None:
            cast.metadata_props.extend(owner.metadata_props)
        return cast

    def as_type(self, tensor: str, want: int, consumer: onnx.NodeProto | None = None) -> str:
        have = self.home.get(tensor)
        if not tensor or have not in FLOATS or have == want:
            return tensor
        key = (tensor, want)
        if key in self.casts:
            return self.casts[key]
        name = self.unique(f"{tensor}__{'fp16' if want == FLOAT16 else 'fp32'}")
        if tensor in self.values and want == FLOAT16:
            array = np.clip(self.values[tensor], -_FP16_MAX, _FP16_MAX).astype(np.float16)
            self.new_initializers.append(numpy_helper.from_array(array, name))
        else:
            self.nodes.append(self.cast_node(tensor, name, want, consumer))
        self.home[name] = want
        self.casts[key] = name
        return name

    def convert_node(self, node: onnx.NodeProto) -> None:
        if node.op_type == "Constant":
            self.nodes.append(node)
            for o in node.output:
                self.home.setdefault(o, self.original.get(o, FLOAT if o in self.values else 0))
            return
        schema = _schema(node, self.opset)
        in_params = list(schema.inputs) if schema else []
        out_params = list(schema.outputs) if schema else []
        allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints} if schema else {}
        fp32 = (schema is None or node.name in self.keep or node.op_type in _ALWAYS_FP32
                or not any("tensor(float16)" in a for a in allowed.values()))
        neutral = node.op_type in _NEUTRAL
        converted: set[str] = set()
        fp32_constraints: set[str] = set()
        for i, tensor in enumerate(node.input):
            if not tensor or self.home.get(tensor) not in FLOATS or neutral:
                continue
            ts = _formal(in_params, i)
            types = allowed.get(ts or "", {ts} if ts else set())
            if not fp32 and "tensor(float16)" in types:
                node.input[i] = self.as_type(tensor, FLOAT16, node)
                converted.add(ts or "")
            else:
                node.input[i] = self.as_type(tensor, FLOAT, node)
                fp32_constraints.add(ts or "")
        for j, out in enumerate(node.output):
            if not out:
                continue
            ts = _formal(out_params, j)
            if ts in converted:
                self.home[out] = FLOAT16
            elif ts in fp32_constraints:
                self.home[out] = FLOAT
            else:  # a custom op (plugin) with float inputs: its outputs are float32 unless inference knows better
                self.home[out] = self.original.get(out) or (FLOAT if schema is None and fp32_constraints else 0)
        self.nodes.append(node)

    def run(self) -> onnx.ModelProto:
        g = self.m.graph
        if not self.keep_io:
            for v in g.input:
                if v.type.tensor_type.elem_type == FLOAT and v.name not in self.values:
                    v.type.tensor_type.elem_type = FLOAT16
                    self.home[v.name] = FLOAT16
        for node in list(g.node):
            self.convert_node(node)
        for out in g.output:
            home = self.home.get(out.name, out.type.tensor_type.elem_type)
            if home not in FLOATS:
                continue
            if not self.keep_io:
                out.type.tensor_type.elem_type = home
            elif home != out.type.tensor_type.elem_type:
                inner = self.unique(f"{out.name}__{'fp16' if home == FLOAT16 else 'fp32'}")
                for n in self.nodes:
                    n.output[:] = [inner if o == out.name else o for o in n.output]
                    n.input[:] = [inner if i == out.name else i for i in n.input]
                self.producers[inner] = self.producers.get(out.name)  # type: ignore[assignment]
                self.nodes.append(self.cast_node(inner, out.name, out.type.tensor_type.elem_type, None))
        used = {i for n in self.nodes for i in n.input} | {o.name for o in g.output}
        self.nodes = [n for n in self.nodes if n.op_type != "Constant" or any(o in used for o in n.output)]
        kept = [t for t in g.initializer if t.name in used]
        del g.node[:]
        g.node.extend(self.nodes)
        del g.initializer[:]
        g.initializer.extend([*kept, *(t for t in self.new_initializers if t.name in used)])
        del g.value_info[:]
        return self.m


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node of `model` a unique name (plans and policies refer to nodes by name)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name, k = f"{node.op_type}_{i}", i
            while name in taken:
                k += 1
                name = f"{node.op_type}_{k}"
            node.name = name
            taken.add(name)


def convert_onnx_to_fp16(model: onnx.ModelProto, keep_fp32_ops: Iterable[str] = KEEP_FP32_OPS,
                         keep_io_types: bool = True, keep_nodes: Iterable[str] = (),
                         static_plan: bool = True) -> onnx.ModelProto:
    """fp16 copy of `model` with the fp32 plan's nodes and `keep_nodes` in fp32, Casts at every boundary.

    `keep_fp32_ops`: op types the plan keeps (with their context: attention energies,
    decomposed LayerNorm, sampling grids); `static_plan=False` keeps no plan at all (only
    `keep_nodes` and the ops without an fp16 schema: the naive all-fp16 conversion).
    `keep_nodes`: node names kept fp32 besides (a keep-fp32 policy, the automatic search).
    Graph inputs and outputs stay float32 when `keep_io_types` (Casts at the edges), so the
    runner that feeds the fp32 model feeds this one. Input and output shapes are unchanged:
    `input: (N, C, H, W) float32 -> output: (N, C', H', W') float32`. Unnamed nodes get
    names; Casts inherit the scope of the node whose tensor they cast. Control flow (If,
    Loop, Scan) is refused. The result passes `onnx.checker` (nodes in topological order).
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for node in m.graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise UsageError("fp16 conversion handles graphs without control flow", "no If/Loop/Scan nodes",
                             f"{node.op_type} node {node.name!r}")
    name_nodes(m)
    planned = {p.node for p in fp32_plan(m, keep_fp32_ops)} if static_plan else set()
    keep = planned | set(keep_nodes)
    converted = _Converter(m, keep, keep_io_types).run()
    why = f"the fp32 plan ({', '.join(sorted(keep_fp32_ops))} and their context)" if static_plan else "no plan"
    converted.doc_string = (converted.doc_string + "\n" if converted.doc_string else "") + (
        f"attndeploy fp16: {len(keep)} node(s) kept in fp32: {why}, {len(set(keep_nodes) - planned)} more by policy")
    onnx.checker.check_model(converted)
    return converted
