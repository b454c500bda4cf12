import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from attndeploy.errors import CheckFailed, UsageError
from attndeploy.exporting.verify import (
    check_no_float64,
    check_opset,
    set_min_ir_version,
)


def tiny_model(opset=17, dtype=TensorProto.FLOAT):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = helper.make_tensor("w", dtype, [4], [1.0, 2.0, 3.0, 4.0])
    nodes = [helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT), helper.make_node("Mul", ["x", "wf"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_float64_initializer_is_named():
    check_no_float64(tiny_model())
    with pytest.raises(CheckFailed, match="initializer w"):
        check_no_float64(tiny_model(dtype=TensorProto.DOUBLE))


def test_opset_mismatch_is_an_error():
    check_opset(tiny_model(17), 17, "torchscript")
    with pytest.raises(UsageError, match="expected 17, got 18"):
        check_opset(tiny_model(18), 17, "dynamo")


def test_ir_version_lowered_to_what_onnxruntime_reads():
    model = tiny_model()
    assert model.ir_version == 14  # onnx 1.23's make_model default, which onnxruntime 1.31 refuses
    with pytest.raises(Exception, match="(?i)ir version|unsupported model"):
        ort.InferenceSession(model.SerializeToString())
    set_min_ir_version(model)
    assert model.ir_version == 8
    onnx.checker.check_model(model)
    ort.InferenceSession(model.SerializeToString())
