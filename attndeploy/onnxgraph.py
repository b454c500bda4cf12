"""Walking an ONNX model: every (sub)graph, and every place that holds or computes float64.

Shared by the export's file checks (`exporting.verify`), the TensorRT lint and the
reduced-precision lint, so each finds the same things the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import onnx
from onnx import AttributeProto, TensorProto

DOUBLE = TensorProto.DOUBLE


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every subgraph (If / Loop / Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from all_graphs(attr.g)
            for sub in attr.graphs:
                yield from all_graphs(sub)


@dataclass(frozen=True)
class Float64Site:
    """One float64 place: `what` in words, the node involved (None for graph values), the tensor's name."""

    what: str
    node: onnx.NodeProto | None = None
    tensor: str = ""


def float64_sites(model: onnx.ModelProto, elem: Mapping[str, int] | None = None) -> list[Float64Site]:
    """Every float64 initializer, graph value, Constant tensor, Cast to float64 and, where `elem` (tensor name ->
    element type, e.g. from shape inference) says so, every node computing float64."""
    found: list[Float64Site] = []
    for graph in all_graphs(model.graph):
        found += [Float64Site(f"initializer {t.name}", None, t.name) for t in graph.initializer if t.data_type == DOUBLE]
        values = [*graph.input, *graph.output, *graph.value_info]
        found += [Float64Site(f"value {v.name}", None, v.name) for v in values if v.type.tensor_type.elem_type == DOUBLE]
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR and attr.t.data_type == DOUBLE:
                    found.append(Float64Site(f"{node.op_type} node {node.name} (attribute {attr.name})", node))
                if node.op_type == "Cast" and attr.name == "to" and attr.i == DOUBLE:
                    found.append(Float64Site(f"Cast node {node.name} to float64", node))
            computed = [o for o in node.output if elem is not None and elem.get(o) == DOUBLE]
            if computed and node.op_type not in ("Cast", "Constant"):
                found.append(Float64Site(f"{node.op_type} node {node.name} computes in float64 (output "
                                         f"{computed[0]!r})", node, computed[0]))
    return found
