"""The lint on a detector's post-processing: TopK (static and dynamic K) and NonMaxSuppression, per TensorRT release
and JetPack, on small hand-made ONNX graphs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attndeploy.errors import UsageError
from attndeploy.lint import TRT_VERSIONS, lint_onnx, parser_support
from tests.test_lint_trt import make_model, value

INT64 = TensorProto.INT64


def _const(name: str, values, dtype=np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype), name)


def topk_model(k: str, sorted_: int = 1) -> onnx.ModelProto:
    """scores (1, A) -> TopK over A, K as `k` says: "300" / "4000" (an initializer), "shape" (min(300, A) from Shape),
    "shape-unbounded" (A itself, from Shape), "values" (the count of positive scores: NonZero)."""
    nodes, inits = [], []
    if k.isdigit():
        inits.append(_const("k", [int(k)]))
    elif k.startswith("shape"):
        nodes += [helper.make_node("Shape", ["scores"], ["s"], name="/Shape"),
                  helper.make_node("Gather", ["s", "one"], ["a"], name="/Gather", axis=0)]
        inits += [_const("one", [1]), _const("cap", [300])]
        nodes.append(helper.make_node("Min", ["a", "cap"], ["k"], name="/Min") if k == "shape"
                     else helper.make_node("Identity", ["a"], ["k"], name="/Identity"))
    else:
        nodes += [helper.make_node("Greater", ["scores", "zero"], ["pos"], name="/Greater"),
                  helper.make_node("NonZero", ["pos"], ["nz"], name="/NonZero"),
                  helper.make_node("Shape", ["nz"], ["nzs"], name="/Shape"),
                  helper.make_node("Slice", ["nzs", "one", "two"], ["count"], name="/count"),
                  helper.make_node("ReduceSum", ["pos_i", "axes"], ["summed"], name="/ReduceSum", keepdims=0),
                  helper.make_node("Cast", ["pos"], ["pos_i"], name="/Cast", to=INT64),
                  helper.make_node("Reshape", ["summed", "shape1"], ["k"], name="/Reshape")]
        inits += [numpy_helper.from_array(np.zeros((), np.float32), "zero"), _const("one", [1]), _const("two", [2]),
                  _const("axes", [1]), _const("shape1", [1])]
    nodes.append(helper.make_node("TopK", ["scores", "k"], ["values", "indices"], name="/head/TopK", axis=1,
                                  sorted=sorted_))
    return make_model(nodes, [value("scores", [1, "anchors"])], [value("values", None), value("indices", None, INT64)],
                      inits)


def nms_model(boxes_shape=(1, "n", 4), scores_shape=(1, 80, "n"), max_boxes=(300,), center_point_box: int = 0,
              quantized: bool = False) -> onnx.ModelProto:
    """boxes, scores -> NonMaxSuppression (-> selected (k, 3)); `quantized` puts a Q/DQ pair on the scores."""
    inits = [_const("max_boxes", list(max_boxes)), numpy_helper.from_array(np.array([0.7], np.float32), "iou"),
             numpy_helper.from_array(np.array([0.25], np.float32), "conf")]
    scores, nodes = "scores", []
    if quantized:
        inits += [numpy_helper.from_array(np.array(0.01, np.float32), "s"), _const("z", 0, np.int8)]
        nodes += [helper.make_node("QuantizeLinear", ["scores", "s", "z"], ["q"], name="/q"),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="/dq")]
        scores = "dq"
    nodes.append(helper.make_node("NonMaxSuppression", ["boxes", scores, "max_boxes", "iou", "conf"], ["selected"],
                                  name="/nms/NonMaxSuppression", center_point_box=center_point_box))
    return make_model(nodes, [value("boxes", list(boxes_shape)), value("scores", list(scores_shape))],
                      [value("selected", None, INT64)], inits)


def rules(model: onnx.ModelProto, trt: str | None = "10", jetpack: str | None = None) -> list[tuple[str, str]]:
    return [(f.severity, f.rule) for f in lint_onnx(model, trt, jetpack)]


def test_topk_with_a_constant_k():
    for trt in TRT_VERSIONS:
        assert rules(topk_model("300"), trt) == [], trt
        found = lint_onnx(topk_model("4000"), trt)
        assert [(f.severity, f.rule, f.node) for f in found] == [("error", "topk", "/head/TopK")], trt
        assert "< 3840, got 4000" in found[0].message
    assert rules(topk_model("300", sorted_=0), "10") == [("error", "topk")]
    assert rules(topk_model("300", sorted_=0), "8.6") == []       # 8.6's table states no such rule


def test_topk_with_a_k_from_shapes_or_from_values():
    for trt in TRT_VERSIONS:
        assert rules(topk_model("shape"), trt) == [], trt          # min(300, A): bounded below 3840
        assert rules(topk_model("shape-unbounded"), trt) == [("warning", "topk-dynamic-k")], trt
        found = lint_onnx(topk_model("values"), trt)
        assert [(f.severity, f.rule) for f in found] == [("error", "topk-dynamic-k")], trt
        assert "follows from tensor values" in found[0].message and "shape tensor" in found[0].message


def test_nms_inputs():
    for trt in TRT_VERSIONS:
        assert rules(nms_model(boxes_shape=(1, 4000, 4), scores_shape=(1, 80, 4000)), trt) == [], trt
    assert rules(nms_model(boxes_shape=(4000, 4), scores_shape=(1, 80, 4000))) == [("error", "nms-inputs")]
    assert rules(nms_model(boxes_shape=(1, 100, 4), scores_shape=(1, 80, 100), max_boxes=(300, 300))) == \
        [("error", "nms-inputs")]
    assert rules(nms_model(boxes_shape=(1, 100, 4), scores_shape=(1, 80, 100), center_point_box=2)) == \
        [("error", "nms-inputs")]


def test_nms_box_limit():
    many = lint_onnx(nms_model(boxes_shape=(1, 8400, 4), scores_shape=(1, 80, 8400)), "10")
    assert [(f.severity, f.rule) for f in many] == [("warning", "nms-box-limit")]
    assert "8400 boxes" in many[0].message and "top 5000" in many[0].message
    assert rules(nms_model(), "10") == [("warning", "nms-box-limit")]    # a count that depends on the input


def test_jetpack_release_is_exact():
    support = parser_support(jetpack="6.1")
    assert (support.key, support.release, support.jetpack) == ("10", "10.3", "6.1")
    with pytest.raises(UsageError, match="--trt and --jetpack must name the same TensorRT"):
        parser_support("8.6", "6.2")
    with pytest.raises(UsageError, match="JetPack version"):
        parser_support(jetpack="5.1")
    static = nms_model(boxes_shape=(1, 100, 4), scores_shape=(1, 80, 100))
    assert rules(static, jetpack="6.1") == []
    assert rules(nms_model(boxes_shape=(1, 100, 4), scores_shape=(1, 80, 100), quantized=True), "10") == []
    assert rules(nms_model(boxes_shape=(1, 100, 4), scores_shape=(1, 80, 100), quantized=True), jetpack="6.2") == \
        [("warning", "int8-postprocess")]


def test_a_relaxation_after_the_jetpacks_release_is_an_error():
    """Pad with computed axes: 10.x accepts it from 10.4 (a warning for "10"); JetPack 6.1 ships 10.3: an error."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="/Shape"),
             helper.make_node("Slice", ["s", "one", "two"], ["axis"], name="/Slice"),
             helper.make_node("Pad", ["x", "pads", "", "axis"], ["y"], name="/pad/Pad")]
    inits = [_const("one", [1]), _const("two", [2]), _const("pads", [1, 1])]
    model = make_model(nodes, [value("x", [1, 4, 8, 8])], [value("y", None)], inits, opset=18)
    assert [r for r in rules(model, "10") if r[1] == "constant-input"] == [("warning", "constant-input")]
    assert [r for r in rules(model, jetpack="6.1") if r[1] == "constant-input"] == [("error", "constant-input")]
