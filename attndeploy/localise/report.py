"""What localisation reports: the module to blame, where its code is, the error there, its ONNX nodes.

`Localisation.message()` is one line, e.g. ``diverges first at `b3` (MLCALen,
test_localise.py:60): the graph's tensor in what it passes to `b3.conv_local` has shape
[1, 1, 3200], eager [2, 1, 1600]; Reshape /b3/Reshape_1 has the constant target shape
[1, 1, -1]: the batch baked in by the exporter; write .view(x.size(0), ...) /
.flatten(...) ...`` or ``diverges first at `stages.1.attn.fc.2` (Conv2d, conv.py:388): max
abs 0.0114 at [1, 0, 0, 0] of its output [2, 16, 1, 1]; its ONNX nodes: 1 Conv``.
`to_dict()` holds every field (and the message) for `--json`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from attndeploy.localise.graph import GraphIndex

BAKED_BATCH_HINT = ("the batch baked in by the exporter; write .view(x.size(0), ...) / .flatten(...) "
                    "(no int(), len() or a size kept from the example)")


@dataclass
class Localisation:
    """The first PyTorch module whose output diverges from the graph's at one input shape.

    `path` ("" for the root) and `cls` name the module, `file`:`line` its class statement
    (`forward_line` its forward), `kind` is "output" (its output differs while everything
    before matched), "input" (the caller's own code diverged before calling `child`) or
    "runtime" (onnxruntime fails at `failed_node` inside it, `error`). `graph_tensor` /
    `max_abs` / `index` / `shape` (eager's) / `got_shape` (the graph's) describe the worst
    tensor there, `input_shape` the model input's, `nodes` are (name, op type) of
    the ONNX nodes the module itself emitted, `notes` what looks wrong among them,
    `folded` the node-less neighbours the exporter folded into its nodes (BatchNorm).
    """

    path: str
    cls: str
    file: str
    line: int
    forward_line: int
    kind: str
    input_shape: tuple[int, ...]
    graph_tensor: str = ""
    child: str = ""
    max_abs: float = math.inf
    index: list[int] = field(default_factory=list)
    shape: tuple[int, ...] = ()
    got_shape: tuple[int, ...] = ()
    failed_node: str = ""
    error: str = ""
    nodes: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    compared: int = 0
    matched: int = 0
    seconds: float = 0.0

    def _what(self) -> str:
        if self.kind == "runtime":
            op = next((op for name, op in self.nodes if name == self.failed_node), "node")
            error = self.error.splitlines()[0] if self.error else "no message"
            return f"onnxruntime fails at its {op} {self.failed_node} at input {list(self.input_shape)}: {error[:200]}"
        where = "of its output" if self.kind == "output" else f"in what it passes to `{self.child}`"
        if self.shape != self.got_shape:
            return f"the graph's tensor {where} has shape {list(self.got_shape)}, eager {list(self.shape)}"
        if not math.isfinite(self.max_abs):
            return f"non-finite value at {self.index} {where} {list(self.shape)}"
        return f"max abs {self.max_abs:.3g} at {self.index} {where} {list(self.shape)}"

    def message(self) -> str:
        verb = "fails first" if self.kind == "runtime" else "diverges first"
        site = f", {os.path.basename(self.file)}:{self.line}" if self.file else ""
        text = f"{verb} at `{self.path or '<root>'}` ({self.cls}{site}): {self._what()}"
        if self.folded:
            text += f" (its nodes also compute {', '.join(f'`{p}`' for p in self.folded)}, folded in by the exporter)"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        elif self.nodes:
            ops: dict[str, int] = {}
            for _, op in self.nodes:
                ops[op] = ops.get(op, 0) + 1
            text += "; its ONNX nodes: " + ", ".join(f"{n} {op}" for op, n in ops.items())
        return text

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["nodes"] = [{"name": n, "op_type": op} for n, op in self.nodes]
        data["max_abs"] = self.max_abs if math.isfinite(self.max_abs) else None
        data["message"] = self.message()
        return data


def dynamic_axes(proto: onnx.ModelProto, input_name: str) -> set[int]:
    """The axes of graph input `input_name` without a fixed size."""
    for value in proto.graph.input:
        if value.name == input_name:
            dims = value.type.tensor_type.shape.dim
            return {i for i, d in enumerate(dims) if not d.HasField("dim_value")}
    return set()


def reshape_notes(index: GraphIndex, nodes: list[onnx.NodeProto], input_name: str,
                  x_shape: tuple[int, ...], failed: str) -> list[str]:
    """One note per `Reshape` in `nodes` whose target shape is a constant that cannot hold at `x_shape`.

    Baked batch: the graph's batch axis is dynamic, the target's first entry is a fixed
    size other than `x_shape[0]`. A constant target of the node onnxruntime failed at
    (`failed`) is named as well.
    """
    batch_dynamic = 0 in dynamic_axes(index.proto, input_name)
    baked: list[tuple[str, list[int]]] = []
    notes = []
    for node in nodes:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in index.constants:
            continue
        target = [int(v) for v in np.asarray(index.constants[node.input[1]]).ravel()]
        if batch_dynamic and target and target[0] > 0 and x_shape and target[0] != x_shape[0]:
            baked.append((node.name, target))
        elif node.name == failed:
            notes.append(f"Reshape {node.name} has the constant target shape {target}: sizes of the export "
                         "example baked in; compute them from x.shape in forward")
    if failed and not baked and not notes:
        notes.append("a size of the export example is fixed in this module's graph (a Python branch on a size, "
                     "or a size read as a Python int, during tracing)")
    if baked:
        (name, target), more = baked[0], [n for n, _ in baked[1:]]
        also = f" (so do {', '.join(more[:3])}{f' and {len(more) - 3} more' if len(more) > 3 else ''})" if more else ""
        notes.insert(0, f"Reshape {name} has the constant target shape {target}{also}: {BAKED_BATCH_HINT}")
    return notes


__all__ = ["BAKED_BATCH_HINT", "Localisation", "dynamic_axes", "reshape_notes"]
