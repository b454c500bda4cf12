"""Small ONNX graphs written with onnx.helper (no torch), for the device-side tests: bundles, imports, Python 3.10."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Dims = list[int | str]


def _save(graph: onnx.GraphProto, path: Path, opset: int) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_relu(path: Path, batch: int | str = "batch", hw: int | str = "height", opset: int = 17) -> Path:
    """x (batch, 3, hw, hw) float32 -> Conv 3x3 (4 channels, pad 1) -> Relu -> y (batch, 4, hw, hw)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, hw, hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, hw, hw])
    return _save(helper.make_graph(nodes, "conv_relu", [x], [y], [w]), path, opset)


def conv_softmax(path: Path) -> Path:
    """x (N, 3, 8, 8) -> Conv -> Softmax over channels -> y (N, 4, 8, 8): the fp16 converter keeps the Softmax fp32."""
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Softmax", ["c"], ["y"], name="attn/softmax", axis=1)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])
    return _save(helper.make_graph(nodes, "conv_softmax", [x], [y], [w]), path, 17)


def qdq_conv(path: Path) -> Path:
    """An explicit-quantization graph: Q/DQ on the input and the weight of one Conv (symmetric, zero point 0)."""
    w = np.random.default_rng(2).standard_normal((4, 3, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
             numpy_helper.from_array(np.array(0, np.int8), "xz"),
             numpy_helper.from_array(np.array(np.abs(w).max() / 127, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
             helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], name="q_w"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w"),
             helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 16, 16])
    return _save(helper.make_graph(nodes, "qdq_conv", [x], [y], inits), path, 17)


def nms_head(path: Path) -> Path:
    """boxes (N, 100, 4) -> scores = its first 2 columns, transposed (N, 2, 100) -> NonMaxSuppression ->
    selected (num_selected, 3) int64: an output whose first axis is not the batch."""
    inits = [numpy_helper.from_array(np.array([10], np.int64), "max_per_class"),
             numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
             numpy_helper.from_array(np.array([0.25], np.float32), "score"),
             numpy_helper.from_array(np.array([0], np.int64), "starts"),
             numpy_helper.from_array(np.array([2], np.int64), "ends"),
             numpy_helper.from_array(np.array([2], np.int64), "axes")]
    nodes = [helper.make_node("Slice", ["boxes", "starts", "ends", "axes"], ["cols"], name="cols"),
             helper.make_node("Transpose", ["cols"], ["scores"], name="scores", perm=[0, 2, 1]),
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_per_class", "iou", "score"], ["selected"],
                              name="nms")]
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 100, 4])
    selected = helper.make_tensor_value_info("selected", TensorProto.INT64, ["num_selected", 3])
    return _save(helper.make_graph(nodes, "nms_head", [boxes], [selected], inits), path, 17)


def two_inputs(path: Path) -> Path:
    """a (N, 4) + b (N, 4) -> y (N, 4): two dynamic inputs."""
    nodes = [helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in ("a", "b", "y")]
    return _save(helper.make_graph(nodes, "two_inputs", values[:2], values[2:]), path, 17)
