"""`lint --trt` rules for reduced-precision graphs, on small hand-built graphs: Q/DQ rules and fp16 ops."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attndeploy.lint import lint_onnx

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16


def conv_graph(zero_point: int = 0, scale: float = 0.05, weight_axis: int = 0, act_channels: int = 1,
               zp_type: type = np.int8, bias_int32: bool = False) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(DQ(int8 weight)) -> y, with the parts each rule looks at set by the arguments."""
    w = np.ones((4, 3, 1, 1), np.int8)
    channels = w.shape[weight_axis]
    inits = [numpy_helper.from_array(w, "w_q"),
             numpy_helper.from_array(np.full(channels, 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(channels, np.int8), "w_zp"),
             numpy_helper.from_array(np.full(act_channels, scale, np.float32).reshape(-1) if act_channels > 1
                                     else np.array(scale, np.float32), "x_scale"),
             numpy_helper.from_array(np.full(act_channels, zero_point, zp_type).reshape(-1) if act_channels > 1
                                     else np.array(zero_point, zp_type), "x_zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="/q/QuantizeLinear",
                              **({"axis": 1} if act_channels > 1 else {})),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"], name="/q/DequantizeLinear",
                              **({"axis": 1} if act_channels > 1 else {})),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["wd"], name="/conv/w_DQ",
                              axis=weight_axis)]
    conv_inputs = ["xd", "wd"]
    if bias_int32:
        inits += [numpy_helper.from_array(np.zeros(4, np.int32), "b_q"),
                  numpy_helper.from_array(np.full(4, 1e-3, np.float32), "b_scale")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale"], ["bd"], name="/conv/b_DQ"))
        conv_inputs.append("bd")
    nodes.append(helper.make_node("Conv", conv_inputs, ["y"], name="/conv/Conv"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def rules(model: onnx.ModelProto, trt: str = "10") -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in lint_onnx(model, trt):
        if f.severity == "error":
            found.setdefault(f.rule, []).append(f.format())
    return found


def test_a_clean_trt_style_qdq_graph_has_no_findings():
    assert rules(conv_graph()) == {} and rules(conv_graph(), "8.6") == {}


def test_nonzero_zero_point():
    found = rules(conv_graph(zero_point=3))
    assert "qdq-zero-point" in found and "module 'q'" in found["qdq-zero-point"][0]


@pytest.mark.parametrize("scale", [0.0, -0.1, float("inf")])
def test_scales_must_be_positive_and_finite(scale):
    assert "qdq-scale" in rules(conv_graph(scale=scale))


def test_per_channel_weight_along_the_wrong_axis():
    found = rules(conv_graph(weight_axis=1))
    assert "qdq-axis" in found and "axis 0" in found["qdq-axis"][0]


def test_per_channel_activation_scale_is_refused():
    found = rules(conv_graph(act_channels=3))
    assert any("activation" in line for line in found["qdq-axis"])


def test_uint8_activations_and_int32_bias_are_types_tensorrt_refuses():
    assert "qdq-type" in rules(conv_graph(zp_type=np.uint8, zero_point=128))
    found = rules(conv_graph(bias_int32=True))
    assert any("onnx-tensorrt#850" in line for line in found["qdq-type"])


def test_fp16_constant_of_shape_is_refused_by_8_6_only():
    node = helper.make_node("ConstantOfShape", ["shape"], ["y"], name="/fill/ConstantOfShape",
                            value=numpy_helper.from_array(np.array([1.0], np.float16)))
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", FLOAT16, [2, 3])],
                              [numpy_helper.from_array(np.array([2, 3], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert "fp16-op" in rules(model, "8.6") and "fp16-op" not in rules(model, "10")
