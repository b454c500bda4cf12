"""The ONNX side of localisation: which tensors carry each module's inputs and outputs.

Each node is mapped to one of the eager model's module paths with
`attndeploy.lint.scopes.module_paths` (dynamo records full paths; TorchScript records short
names along the call stack, ``act_1`` for a second call, resolved with the calls seen in
eager). A node is *inside* module ``p`` when its path is ``p`` or below it. Then for every
module:

- `outs[p]`: tensors produced inside ``p`` and consumed outside it (or graph outputs),
- `ins[p]`: tensors consumed inside ``p`` and produced outside it (graph inputs included;
  tensors computed from initializers and ``Constant`` outputs only are weights, not inputs),

both in graph order. `run_exposed` makes them extra graph outputs and runs onnxruntime
once, with its graph optimizations off (nodes keep the exporter's names); if a node fails
at this input shape (a baked ``Reshape``), it drops the tensors that depend on that node
and runs again, so the modules before it can still be compared.

Limits: a module that emits no node (folded into a neighbour, e.g. BatchNorm fused into
the Conv before it) has no tensors of its own; nodes of a module called twice share its
path (the two calls are told apart by shape and value only); subgraphs (If/Loop bodies)
are not looked into; one graph input; a graph whose nodes lost their scopes (onnxsim drops
dynamo's ``metadata_props``) maps everything to the root.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from attndeploy.defaults import ORT_PROVIDERS
from attndeploy.lint.scopes import module_paths
from attndeploy.runtimes.onnxruntime_runner import ort_session

_FAILED_NODE = re.compile(r"Name:'([^']*)'")
_SOURCE_PREFIX = re.compile(r"^\S+\.(?:h|cc|cpp):\d+\s+(?:[\w:<>,*& ]+\([^)]*\)\s+)?")
MAX_RETRIES = 8
CPU = ORT_PROVIDERS["onnxruntime-cpu"]


def _ancestors(path: str, paths: set[str]) -> frozenset[str]:
    parts = path.split(".") if path else []
    return frozenset({""} | {p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p in paths})


@dataclass
class GraphIndex:
    """Scopes and module boundaries of one ONNX graph (main graph only)."""

    proto: onnx.ModelProto
    scopes: list[str]                                  # per node: its module path
    producer: dict[str, int]                           # tensor -> index of the node that writes it
    consumers: dict[str, list[int]]                    # tensor -> indices of the nodes that read it
    outs: dict[str, list[str]] = field(default_factory=dict)
    ins: dict[str, list[str]] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)   # initializers and Constant outputs
    derived: set[str] = field(default_factory=set)                    # tensors computed from constants only
    emitting: set[str] = field(default_factory=set)                   # modules with a node in or below them

    def own(self, path: str) -> list[onnx.NodeProto]:
        """The nodes emitted by `path` itself (not by its children)."""
        return [n for n, s in zip(self.proto.graph.node, self.scopes) if s == path]

    def has_nodes(self, path: str) -> bool:
        """Whether `path` or a module below it emitted a node."""
        return path in self.emitting


def _constants(proto: onnx.ModelProto) -> tuple[dict[str, np.ndarray], set[str]]:
    """(values of initializers, Constant outputs and Identity copies of them; every tensor computed from constants only)."""
    values = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    derived = set(values)
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = onnx.numpy_helper.to_array(attr.t)
                elif attr.name in ("value_ints", "value_int", "value_floats", "value_float"):
                    values[node.output[0]] = np.asarray(helper.get_attribute_value(attr))
        elif node.op_type == "Identity" and node.input and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
        inputs = [t for t in node.input if t]
        if node.op_type == "Constant" or (inputs and all(t in derived for t in inputs)):
            derived.update(t for t in node.output if t)
    return values, derived


def index_graph(proto: onnx.ModelProto, paths: Iterable[str], calls: Iterable[tuple[str, str]] = ()) -> GraphIndex:
    """Map every node of `proto` to one of `paths` and find each module's boundary tensors.

    `paths`: the model's module paths; `calls`: (caller, callee) path pairs seen in eager
    (they settle which module a TorchScript scope name means when several share it).
    """
    known = set(paths) | {""}
    called = set(calls)
    graph = proto.graph
    scopes = module_paths(graph.node, known, called)
    producer = {t: i for i, n in enumerate(graph.node) for t in n.output if t}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for t in node.input:
            if t:
                consumers.setdefault(t, []).append(i)
    values, derived = _constants(proto)
    index = GraphIndex(proto, scopes, producer, consumers, constants=values, derived=derived)
    anc = [_ancestors(s, known) for s in scopes]
    index.emitting = set().union(*anc) if anc else set()
    outputs = {o.name for o in graph.output}
    for i, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        for t in node.output:
            if t in derived:
                continue
            if not t:
                continue
            readers = [anc[j] for j in consumers.get(t, [])]
            for p in anc[i]:
                if t in outputs or any(p not in r for r in readers):
                    index.outs.setdefault(p, []).append(t)
        for t in node.input:
            if not t or t in derived:
                continue
            made_in = anc[producer[t]] if t in producer else frozenset()
            for p in anc[i] - made_in:
                if t not in index.ins.setdefault(p, []):
                    index.ins[p].append(t)
    return index


def _downstream(index: GraphIndex, node: int) -> set[str]:
    """Every tensor computed from `node`'s outputs."""
    seen: set[str] = set()
    todo = [t for t in index.proto.graph.node[node].output if t]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for j in index.consumers.get(t, []):
            todo.extend(o for o in index.proto.graph.node[j].output if o)
    return seen


def _needed_nodes(index: GraphIndex, names: Iterable[str]) -> set[int]:
    needed: set[int] = set()
    todo = [index.producer[t] for t in names if t in index.producer]
    while todo:
        i = todo.pop()
        if i in needed:
            continue
        needed.add(i)
        todo.extend(index.producer[t] for t in index.proto.graph.node[i].input if t in index.producer)
    return needed


def _exposed_model(index: GraphIndex, names: list[str]) -> bytes:
    """`proto` with `names` as its only outputs and only the nodes they need."""
    model = onnx.ModelProto()
    model.CopyFrom(index.proto)
    keep = _needed_nodes(index, names)
    nodes = [n for i, n in enumerate(index.proto.graph.node) if i in keep]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    declared = {o.name: o for o in index.proto.graph.output}
    del model.graph.output[:]
    model.graph.output.extend(declared.get(t) or helper.make_empty_tensor_value_info(t) for t in names)
    return model.SerializeToString()


def clean_error(text: str) -> str:
    """onnxruntime's status message without its source path and C++ signature, on one line."""
    message = " ".join(text.split("Status Message:")[-1].split())
    return _SOURCE_PREFIX.sub("", message)


def _failed_node(error: str, by_name: dict[str, int]) -> int:
    """The node onnxruntime names in `error` (or the one its renamed copy came from), -1 if none."""
    match = _FAILED_NODE.search(error)
    if not match:
        return -1
    name = match.group(1)
    if name in by_name:
        return by_name[name]
    prefixes = [n for n in by_name if name.startswith(n)]
    return by_name[max(prefixes, key=len)] if prefixes else -1


@dataclass
class GraphRun:
    """Runtime values of the exposed tensors; `failed_node` is the node onnxruntime failed at (-1: none)."""

    values: dict[str, np.ndarray]
    failed_node: int = -1
    error: str = ""


def run_exposed(index: GraphIndex, names: list[str], input_name: str, x: np.ndarray) -> GraphRun:
    """Run the graph on `x` with `names` exposed; on a failing node, drop what depends on it and retry.

    `x`: the model input (N, C, H, W) float32. Never raises for onnxruntime's errors: a
    graph it cannot load, or a failure at a node it does not name, comes back as `error`
    with no values beyond the input.
    """
    by_name = {n.name: i for i, n in enumerate(index.proto.graph.node) if n.name}
    wanted = list(dict.fromkeys(t for t in names if t in index.producer))
    failed, error = -1, ""
    for _ in range(MAX_RETRIES):
        if not wanted:
            break
        try:
            session = ort_session(_exposed_model(index, wanted), 0, CPU, level="none")  # exporter node names kept
            arrays = session.run(wanted, {input_name: x})
        except Exception as err:  # onnxruntime's own error types: a node failed at this shape
            node = _failed_node(str(err), by_name)
            if node < 0 or node == failed:
                return GraphRun({input_name: x}, failed, error or str(err).strip())
            if failed < 0:
                failed, error = node, clean_error(str(err))
            dropped = _downstream(index, node)
            wanted = [t for t in wanted if t not in dropped]
            continue
        return GraphRun({input_name: x, **dict(zip(wanted, arrays))}, failed, error)
    return GraphRun({input_name: x}, failed, error)
