"""The Triton model repository: config.pbtxt parses with Triton's own model-config protobuf and its inputs and
outputs (names, data types, dims, max_batch_size) are the graph's, written out here by hand for each graph."""

from __future__ import annotations

import os

import onnx
import pytest

from attndeploy.bundle import write_triton_repository
from attndeploy.errors import UsageError
from attndeploy.precision.fp16 import convert_onnx_to_fp16
from tests.onnx_graphs import conv_relu, conv_softmax, nms_head, qdq_conv


def model_config_pb2():
    """tritonclient's ModelConfig protobuf module (the dev extra installs tritonclient[grpc]); CI must have it."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb2
    except (ImportError, RuntimeError) as err:  # tritonclient.grpc raises RuntimeError without grpcio
        if os.environ.get("CI"):
            pytest.fail(f"tritonclient[grpc] must be installed in CI (the dev extra): {err}")
        pytest.skip(f"tritonclient[grpc] is not installed: {err}")
    return pb2


def parse(folder):
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    config = text_format.Parse((folder / "config.pbtxt").read_text(), pb2.ModelConfig())
    return pb2, config


def io_of(config, pb2):
    """[(name, data type name, dims)] of the inputs, then of the outputs."""
    def rows(tensors):
        return [(t.name, pb2.DataType.Name(t.data_type), list(t.dims)) for t in tensors]
    return rows(config.input), rows(config.output)


def test_a_dynamic_batch_graph_batches_up_to_the_profile_max(tmp_path):
    conv_relu(tmp_path / "m.onnx")  # x (batch, 3, H, W) -> y (batch, 4, H, W)
    folder = write_triton_repository(tmp_path / "m.onnx", tmp_path, "cbam", max_batch=8)
    assert folder == tmp_path / "triton" / "cbam"
    assert (folder / "1" / "model.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()
    pb2, config = parse(folder)
    assert (config.name, config.platform, config.max_batch_size) == ("cbam", "onnxruntime_onnx", 8)
    assert io_of(config, pb2) == ([("x", "TYPE_FP32", [3, -1, -1])], [("y", "TYPE_FP32", [4, -1, -1])])
    assert not config.HasField("optimization")


def test_a_fixed_batch_graph_has_max_batch_size_0_and_full_dims(tmp_path):
    conv_relu(tmp_path / "s.onnx", batch=1, hw=8)
    pb2, config = parse(write_triton_repository(tmp_path / "s.onnx", tmp_path, "s", max_batch=8))
    assert config.max_batch_size == 0
    assert io_of(config, pb2) == ([("x", "TYPE_FP32", [1, 3, 8, 8])], [("y", "TYPE_FP32", [1, 4, 8, 8])])


def test_an_output_not_batched_with_the_input_turns_batching_off(tmp_path):
    nms_head(tmp_path / "nms.onnx")  # selected boxes (num_selected, 3): axis 0 is not the batch
    pb2, config = parse(write_triton_repository(tmp_path / "nms.onnx", tmp_path, "nms"))
    assert config.max_batch_size == 0
    assert io_of(config, pb2) == ([("boxes", "TYPE_FP32", [-1, 100, 4])], [("selected", "TYPE_INT64", [-1, 3])])


def test_an_fp16_graph_gets_the_tensorrt_accelerator_at_fp16(tmp_path):
    conv_softmax(tmp_path / "m.onnx")
    fp16 = convert_onnx_to_fp16(onnx.load(str(tmp_path / "m.onnx")), keep_io_types=False)
    onnx.save(fp16, str(tmp_path / "m.fp16.onnx"))
    pb2, config = parse(write_triton_repository(tmp_path / "m.fp16.onnx", tmp_path, "m_fp16", max_batch=4,
                                                tensorrt_accelerator=True))
    # the Softmax that makes y stays fp32 in the mixed graph (attndeploy.precision.plan), so y is float32
    assert io_of(config, pb2) == ([("x", "TYPE_FP16", [3, 8, 8])], [("y", "TYPE_FP32", [4, 8, 8])])
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert [(a.name, dict(a.parameters)) for a in accelerators] == [("tensorrt", {"precision_mode": "FP16"})]


def test_names_that_need_escaping_survive_the_round_trip(tmp_path):
    conv_relu(tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    odd = 'in"put\\0 é'
    model.graph.input[0].name = odd
    model.graph.node[0].input[0] = odd
    onnx.save(model, str(tmp_path / "odd.onnx"))
    pb2, config = parse(write_triton_repository(tmp_path / "odd.onnx", tmp_path, "odd", max_batch=2))
    assert config.input[0].name == odd


def test_what_triton_cannot_be_given_is_refused(tmp_path):
    conv_relu(tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="max batch"):
        write_triton_repository(tmp_path / "m.onnx", tmp_path, "m")
    with pytest.raises(UsageError, match="plain folder name"):
        write_triton_repository(tmp_path / "m.onnx", tmp_path, "../m", max_batch=2)
    qdq_conv(tmp_path / "q.onnx")
    with pytest.raises(UsageError, match="fp32 and fp16 graphs"):
        write_triton_repository(tmp_path / "q.onnx", tmp_path, "q", max_batch=2, tensorrt_accelerator=True)
    assert not (tmp_path / "triton" / "q").exists() and not (tmp_path / "triton" / "m").exists()


def test_external_data_files_travel_with_the_graph(tmp_path):
    conv_relu(tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data",
              size_threshold=0)
    folder = write_triton_repository(tmp_path / "ext.onnx", tmp_path, "ext", max_batch=2)
    assert (folder / "1" / "ext.data").read_bytes() == (tmp_path / "ext.data").read_bytes()
    loaded = onnx.load(str(folder / "1" / "model.onnx"))  # loads the external data from beside it
    assert onnx.numpy_helper.to_array(loaded.graph.initializer[0]).shape == (4, 3, 3, 3)
