"""The TensorRT path of `attndeploy verify`, around Polygraphy and TensorRT faked at their seams (`tests.fake_tensorrt`):
the engine runs, is judged by the bundle's budget, reports the precision TensorRT's engine inspector gives, fails an
"fp16" engine that computes nothing in fp16, and on failure rebuilds with the module tensors marked as outputs."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest
from onnx import helper

from attndeploy.errors import CheckFailed
from attndeploy.localise.graph import GraphRun
from attndeploy.tensorrt.inspect import precision_from_information
from tests.bundles import NUDGES, cbam_bundle, cbam_fp16_bundle, nudged_copy  # noqa: F401
from tests.fake_tensorrt import install, layer

CBAM_PROFILE = ((1, 64, 14, 14), (1, 64, 56, 56), (4, 64, 112, 112))
FP16_LAYERS = [layer("CaskConvolution", "FP16"), layer("Reformat", "FP32"), layer("PointWiseV2", "FP16")]
FP32_LAYERS = [layer("CaskConvolution", "FP32"), layer("PointWiseV2", "FP32")]


def engine_of(bundle, graph: str, folder):
    """A copy of `bundle` with `<stem>.engine` beside `graph` (the fake engine runs the graph's bytes)."""
    copy = folder / "bundle"
    if not copy.exists():
        shutil.copytree(bundle, copy)
    engine = copy / graph.replace(".onnx", ".engine")
    engine.write_bytes((copy / graph).read_bytes())
    return copy, engine


def verify_json(cli, capsys, *args):
    capsys.readouterr()
    code = cli(["verify", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_an_engine_is_judged_and_its_precision_read_from_the_engine(cli, capsys, monkeypatch, tmp_path, cbam_bundle):
    cuda = install(monkeypatch, FP32_LAYERS, CBAM_PROFILE)
    folder, engine = engine_of(cbam_bundle, "cbam.onnx", tmp_path)
    code, result, err = verify_json(cli, capsys, folder, "--engine", engine)
    assert code == 0, err
    assert (result["backend"], result["precision"], result["engine"]) == ("tensorrt", "fp32", str(engine))
    assert result["parity"]["budget"]["kind"] == "float64" and result["parity"]["shapes"] == ["1x64x56x56", "1x64x14x14"]
    assert result["engine_precision"]["by_precision"] == {"fp32": 2} and result["engine_precision"]["weighted"] == {
        "fp32": 1}
    assert cuda.set_calls == []  # device 0 was current: never switched
    code, result, _ = verify_json(cli, capsys, folder, "--backend", "tensorrt")  # <stem>.engine beside the graph
    assert code == 0 and result["engine"] == str(engine)


def test_probes_outside_the_profile_are_skipped_and_none_inside_is_bad_input(cli, capsys, monkeypatch, tmp_path,
                                                                              cbam_bundle):
    install(monkeypatch, FP32_LAYERS, ((1, 64, 28, 28), (1, 64, 56, 56), (1, 64, 56, 56)))
    folder, engine = engine_of(cbam_bundle, "cbam.onnx", tmp_path)
    code, result, _ = verify_json(cli, capsys, folder, "--engine", engine)
    assert code == 0 and result["skipped_shapes"] == ["1x64x14x14"] and result["parity"]["shapes"] == ["1x64x56x56"]
    install(monkeypatch, FP32_LAYERS, ((2, 64, 8, 8), (2, 64, 8, 8), (2, 64, 8, 8)))
    code, result, err = verify_json(cli, capsys, folder, "--engine", engine)
    assert code == 2 and "the engine's optimization profile must take one of the bundle's inputs" in err


def test_an_fp16_engine_must_compute_in_fp16(cli, capsys, monkeypatch, tmp_path, cbam_fp16_bundle):
    install(monkeypatch, FP16_LAYERS, CBAM_PROFILE)
    folder, engine = engine_of(cbam_fp16_bundle, "cbam.fp16.onnx", tmp_path)
    code, result, err = verify_json(cli, capsys, folder, "--engine", engine)
    assert code == 0, err
    assert result["parity"]["budget"]["kind"] == "cosine" and result["parity"]["reduced_fraction"] == 1.0
    install(monkeypatch, FP32_LAYERS, CBAM_PROFILE)  # what trtexec makes of it, built without its precision
    code, result, err = verify_json(cli, capsys, folder, "--engine", engine)
    assert code == 1 and result["parity"]["reduced_fraction"] == 0.0
    assert "no weighted op runs at fp16: the graph is not the precision asked for" in err.splitlines()[-1]


def test_a_failing_engine_is_rebuilt_with_its_module_tensors_marked(cli, capsys, monkeypatch, tmp_path, cbam_bundle):
    import attndeploy.tensorrt.exposed as exposed
    from attndeploy.tensorrt.exposed import MarkOutputs

    install(monkeypatch, FP32_LAYERS, CBAM_PROFILE)
    node, module = NUDGES["cbam"]
    folder = nudged_copy(cbam_bundle, tmp_path / "nudged", node)
    engine = folder / "cbam.engine"
    engine.write_bytes((folder / "cbam.onnx").read_bytes())
    built = []

    def fake_build(plan, label):
        """TensorRT's build, faked: the marking step runs over a network of the graph's tensors; the "engine" is the
        graph with the marked tensors as outputs."""
        graph = onnx.load(str(folder / "cbam.onnx"))
        assert isinstance(plan.network._func, MarkOutputs)
        network = FakeNetwork([o for n in graph.graph.node for o in n.output])
        plan.network._func(network=network)
        built.append(network.marked)
        graph.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in network.marked)
        return graph.SerializeToString(), []

    monkeypatch.setattr(exposed, "run_plan", fake_build)
    code, result, err = verify_json(cli, capsys, folder, "--engine", engine)
    assert code == 1 and result["localisation"]["path"] == module, err
    assert len(built) == 1 and len(built[0]) > 10 and "shape_of_x" not in built[0]
    assert any("rebuilt in TensorRT with them marked as outputs" in n for n in result["notes"])

    def refused(plan, label):
        raise CheckFailed("TensorRT could not build cbam.onnx: [E] out of memory")

    monkeypatch.setattr(exposed, "run_plan", refused)  # TensorRT cannot: onnxruntime localises, and says so
    code, result, _ = verify_json(cli, capsys, folder, "--engine", engine)
    assert code == 1 and result["localisation"]["path"] == module
    assert any("out of memory" in n for n in result["notes"])
    assert any("compared in onnxruntime on the CPU instead" in n for n in result["notes"])


class FakeTensor:
    def __init__(self, name: str, dtype: str) -> None:
        self.name, self.dtype, self.is_network_output = name, dtype, False


class FakeNetwork:
    """An `INetworkDefinition` of one layer per tensor (the last one an integer tensor, which is never marked)."""

    def __init__(self, names: list[str]) -> None:
        self.tensors = [FakeTensor(n, "trt.float32") for n in names] + [FakeTensor("shape_of_x", "i64")]
        self.num_layers, self.marked = len(self.tensors), []

    def get_layer(self, i: int):
        tensor = self.tensors[i]
        return type("Layer", (), {"num_outputs": 1, "get_output": lambda self, j: tensor})()

    def mark_output(self, tensor: FakeTensor) -> None:
        tensor.is_network_output = True
        self.marked.append(tensor.name)


def test_mark_outputs_marks_floating_tensors_it_was_asked_for(monkeypatch):
    from attndeploy.tensorrt.exposed import MarkOutputs

    install(monkeypatch, [], ())
    network = FakeNetwork(["a", "b", "c"])
    network.tensors[1].is_network_output = True
    step = MarkOutputs(["a", "b", "shape_of_x", "missing"])
    step(network=network)
    assert step.marked == ["a"] == network.marked


def test_cuda_device_switches_and_restores(monkeypatch):
    from attndeploy.tensorrt._api import cuda_device

    cuda = install(monkeypatch, [], ())
    with cuda_device(0):
        assert cuda.set_calls == []
    with cuda_device(1):
        assert cuda.device == 1
    assert cuda.set_calls == [1, 0] and cuda.device == 0


@pytest.mark.parametrize("split", [False, True], ids=["trt8.6-10", "trt11"])
def test_layer_precisions_from_engine_information(split):
    layers = [layer("CaskConvolution", "FP16", split=split), layer("CaskGemmConvolution", "Int8", "Int8", split),
              layer("Reformat", "FP32", split=split), layer("Softmax", "Float", split=split),
              layer("MatrixMultiply", "Half", split=split), layer("Shuffle", "INT32", split=split)]
    found = precision_from_information(json.dumps({"Layers": layers}))
    assert found.by_precision == {"fp16": 2, "int8": 1, "fp32": 2} and found.layers == 6
    assert found.weighted == {"fp16": 2, "int8": 1}
    assert found.fraction("fp16") == 1.0 and found.fraction("int8") == pytest.approx(1 / 3)
    assert found.describe() == "6 layers: 2 fp16, 2 fp32, 1 int8"


def test_an_engine_built_without_detailed_information_has_no_precision():
    found = precision_from_information(json.dumps({"Layers": ["conv1", "relu1"], "Bindings": ["x", "y"]}))
    assert not found.known and found.fraction("fp16") is None and "--profilingVerbosity=detailed" in found.describe()


def test_exposed_values_come_back_by_name(monkeypatch, tmp_path):
    """`exposed_engine_values` builds for exactly x's shape, at the graph's precision, and returns the input too."""
    import numpy as np

    import attndeploy.tensorrt.exposed as exposed
    from tests.onnx_graphs import conv_relu

    install(monkeypatch, [], ((1, 3, 8, 8),) * 3)
    path = conv_relu(tmp_path / "m.onnx", hw=8)
    seen = {}

    def fake_build(plan, label):
        seen["profile"], seen["precision"] = plan.config.profiles[0], plan.strategy
        graph = onnx.load(str(path))
        return graph.SerializeToString(), []

    monkeypatch.setattr(exposed, "run_plan", fake_build)
    x = np.ones((1, 3, 8, 8), np.float32)
    values = exposed.exposed_engine_values(path, ["y"], "x", x)
    assert isinstance(values, GraphRun) and set(values.values) == {"x", "y"} and values.failed_node == -1
    assert seen["precision"].strongly_typed is False and not seen["precision"].fp16_flag
    assert (seen["profile"]["x"].min, seen["profile"]["x"].max) == ((1, 3, 8, 8), (1, 3, 8, 8))
