"""TensorRT's rules for a detector's post-processing ops: TopK (the NMS-free head's top-k) and NonMaxSuppression.

    for severity, rule, node, message in detection_op_rules(facts, node): ...

What each TensorRT generation accepts is in `trt_support` (with its sources). Here:

- TopK: `sorted` must be 1 (10.x, 11); a constant K must be < 3840; a K computed in the graph
  is parsed from 8.6 on as a shape tensor: one that follows from tensor values (through
  `NonZero`, a reduction of scores ...) is refused, one from shapes must stay < 3840 at every
  input (no finding when a `Min` with a constant bounds it, as ultralytics' `min(max_det,
  anchors)` does);
- NonMaxSuppression: boxes and scores 3-D, FP32/FP16, the optional thresholds scalars,
  `center_point_box` 0 or 1; TensorRT's NMS keeps only the top 5000 boxes per image (2000 on
  SM 5.3 / 6.2) before suppressing, where ONNX keeps all: a warning where more can reach it;
- both, on TensorRT 10.3 as JetPack 6 ships it: its INT8 builds of such graphs are reported
  to fail (a warning on Q/DQ graphs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import onnx
from onnx import TensorProto, numpy_helper

from attndeploy.lint.findings import ERROR, WARNING
from attndeploy.lint.trt_support import ParserSupport

Rule = tuple[str, str, onnx.NodeProto, str]
SHAPE_SOURCES = frozenset({"Shape", "Size"})
# ops that carry a shape value through (their data inputs decide it); anything else computes from tensor values
SHAPE_ARITHMETIC = frozenset("""Add Sub Mul Div Mod Min Max Clip Floor Ceil Cast Gather Slice Concat Unsqueeze Squeeze
Reshape Identity Expand ReduceMin ReduceMax ReduceProd ReduceSum Abs Neg Range Where Equal Less Greater""".split())
PASS_BOUND = frozenset({"Cast", "Reshape", "Unsqueeze", "Squeeze", "Identity", "Gather", "Slice", "Expand"})
QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
FLOATS = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16})
JETPACK_INT8_ISSUE = "https://github.com/ultralytics/ultralytics/issues/23841"


class GraphFacts(Protocol):
    """What the parser checks know about the graph (see `trt_lint._ParserChecks`)."""

    s: ParserSupport
    constants: dict[str, TensorProto]
    ranks: dict[str, int]
    elem: dict[str, int]
    dims: dict[str, list[int | None]]             # a tensor's dims where inferred (None: not a fixed number)
    producers: dict[str, onnx.NodeProto]
    quantized: bool


def _attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def value_source(facts: GraphFacts, tensor: str, depth: int = 0) -> onnx.NodeProto | str | None:
    """None when `tensor` follows from shapes and constants only; else the node (or graph input's name) whose
    tensor values it follows from."""
    if tensor in facts.constants or depth > 64:
        return None
    node = facts.producers.get(tensor)
    if node is None:
        return tensor   # a graph input's values
    if node.op_type in SHAPE_SOURCES:
        return None
    if node.op_type not in SHAPE_ARITHMETIC:
        return node
    data = node.input[:1] if node.op_type in ("Reshape", "Expand") else node.input
    for name in data:
        if name:
            found = value_source(facts, name, depth + 1)
            if found is not None:
                return found
    return None


def upper_bound(facts: GraphFacts, tensor: str, depth: int = 0) -> float | None:
    """A bound on `tensor`'s largest value visible in the graph (a constant, or a Min / Clip with one), or None."""
    if tensor in facts.constants:
        array = numpy_helper.to_array(facts.constants[tensor])
        return float(array.max()) if array.size else None
    node = facts.producers.get(tensor)
    if node is None or depth > 64:
        return None
    if node.op_type in ("Min", "ReduceMin"):
        bounds = [b for b in (upper_bound(facts, i, depth + 1) for i in node.input if i) if b is not None]
        return min(bounds) if bounds else None
    if node.op_type == "Clip" and len(node.input) > 2 and node.input[2]:
        return upper_bound(facts, node.input[2], depth + 1)
    if node.op_type in PASS_BOUND and node.input:
        return upper_bound(facts, node.input[0], depth + 1)
    if node.op_type == "Concat":
        known = [upper_bound(facts, i, depth + 1) for i in node.input]
        values = [b for b in known if b is not None]
        return max(values) if values and len(values) == len(known) else None
    return None


def _name(source: onnx.NodeProto | str) -> str:
    return f"graph input {source!r}" if isinstance(source, str) else f"{source.op_type} {source.name or '(unnamed)'}"


def topk_rules(facts: GraphFacts, node: onnx.NodeProto) -> Iterator[Rule]:
    s = facts.s
    if s.key != "8.6" and _attr_int(node, "sorted", 1) == 0:
        yield ERROR, "topk", node, "TopK must be sorted (sorted=1)"
    k_name = node.input[1] if len(node.input) > 1 else ""
    if not k_name:
        k = _attr_int(node, "k", 0)   # opset < 10: an attribute
        if k >= s.topk_max_k:
            yield ERROR, "topk", node, f"TopK K must be < {s.topk_max_k}, got {k}"
        return
    if k_name in facts.constants:
        k = int(numpy_helper.to_array(facts.constants[k_name]).max(initial=0))
        if k >= s.topk_max_k:
            yield ERROR, "topk", node, f"TopK K must be < {s.topk_max_k}, got {k}"
        return
    source = value_source(facts, k_name)
    if source is not None:
        yield ERROR, "topk-dynamic-k", node, (f"TopK's K ({k_name!r}) follows from tensor values ({_name(source)}): "
                                             f"TensorRT {s.key} takes K as a shape tensor; compute it from shapes "
                                             "and constants (e.g. min(k, x.shape[axis]))")
        return
    bound = upper_bound(facts, k_name)
    if bound is None or bound >= s.topk_max_k:
        yield WARNING, "topk-dynamic-k", node, (f"TopK's K ({k_name!r}) is computed from the input's shape: TensorRT "
                                               f"parses it from 8.6 on, but K must stay < {s.topk_max_k} at every "
                                               "input (bound it with a Min against a constant)")


def nms_rules(facts: GraphFacts, node: onnx.NodeProto) -> Iterator[Rule]:
    s = facts.s
    for index, what in ((0, "boxes"), (1, "scores")):
        name = node.input[index] if len(node.input) > index else ""
        rank = facts.ranks.get(name)
        if rank is not None and rank != 3:
            yield ERROR, "nms-inputs", node, f"NonMaxSuppression {what} must be 3-D, got rank {rank}"
        elem = facts.elem.get(name)
        if elem and elem not in FLOATS:
            yield ERROR, "nms-inputs", node, (f"NonMaxSuppression {what} must be FP32 or FP16, got "
                                             f"{TensorProto.DataType.Name(elem)}")
    for index, what in ((2, "max_output_boxes_per_class"), (3, "iou_threshold"), (4, "score_threshold")):
        name = node.input[index] if len(node.input) > index else ""
        if name in facts.constants and numpy_helper.to_array(facts.constants[name]).size != 1:
            yield ERROR, "nms-inputs", node, f"NonMaxSuppression {what} must be a scalar"
    if _attr_int(node, "center_point_box", 0) not in (0, 1):
        yield ERROR, "nms-inputs", node, "NonMaxSuppression center_point_box must be 0 or 1"
    boxes = facts.dims.get(node.input[0]) if node.input else None
    count = boxes[1] if boxes is not None and len(boxes) > 1 else None
    if not isinstance(count, int) or count > s.nms_box_limit:
        amount = f"{count} boxes" if isinstance(count, int) else "a box count that depends on the input"
        yield WARNING, "nms-box-limit", node, (f"NonMaxSuppression gets {amount}: TensorRT's NMS keeps only the top "
                                              f"{s.nms_box_limit} per image by score (2000 on SM 5.3 / 6.2 Jetsons) "
                                              "before suppressing, onnxruntime keeps all, so where more boxes pass "
                                              "the score filter (a low conf) the detections differ")


def detection_op_rules(facts: GraphFacts, node: onnx.NodeProto) -> Iterator[Rule]:
    """The findings for a TopK or NonMaxSuppression `node` (none for other ops)."""
    if node.op_type == "TopK":
        yield from topk_rules(facts, node)
    elif node.op_type == "NonMaxSuppression":
        yield from nms_rules(facts, node)
    else:
        return
    if facts.s.release == "10.3" and facts.quantized:
        yield WARNING, "int8-postprocess", node, (f"TensorRT 10.3 (JetPack {facts.s.jetpack or '6'}) is reported to "
                                                 f"fail building INT8 engines with {node.op_type} in the graph "
                                                 f"({JETPACK_INT8_ISSUE}): export the post-processing separately or "
                                                 "use a newer TensorRT")


__all__ = ["GraphFacts", "detection_op_rules", "nms_rules", "topk_rules", "upper_bound", "value_source"]
