"""`build_engine`'s orchestration against a stand-in `tensorrt` module (the real one needs a GPU).

The stand-in records what the builder is asked to do: network flags per TensorRT
generation, TF32 cleared, FP16 + OBEY_PRECISION_CONSTRAINTS with pinned layers (8.6/10),
a pre-converted fp16 ONNX under STRONGLY_TYPED (11), the profile, the timing cache, the
engine cache, and parser errors reported with node and module scope. Real engines are
built and checked against eager PyTorch in test_tensorrt_engine.py where TensorRT runs.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attndeploy.tensorrt import builder as builder_module
from attndeploy.tensorrt.builder import EngineBuildFailed, build_engine
from attndeploy.tensorrt.cache import Platform, sidecar_path
from attndeploy.tensorrt.profiles import derive_profile


class _Severity(int):
    name: str = ""

    def __new__(cls, value: int, name: str) -> _Severity:
        obj = super().__new__(cls, value)
        obj.name = name
        return obj


class _Tensor:
    def __init__(self, name: str, shape: tuple[int, ...] = ()) -> None:
        self.name, self.shape, self.dtype = name, shape, "fp32"


class _Layer:
    def __init__(self, node: onnx.NodeProto) -> None:
        self.name, self.type, self.metadata = node.name, "other", f"[ONNX Layer: {node.name}]"
        self.outputs = [_Tensor(o) for o in node.output]
        self.precision = None
        self.num_outputs = len(self.outputs)

    def get_output(self, j: int) -> _Tensor:
        return self.outputs[j]

    def set_output_type(self, j: int, dtype: str) -> None:
        self.outputs[j].dtype = dtype


def fake_tensorrt(version: str, log: dict) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.float32, trt.float16 = "fp32", "fp16"
    trt.Dims = tuple
    trt.LayerType = types.SimpleNamespace(CONSTANT="constant", SHAPE="shape")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", TF32="TF32", OBEY_PRECISION_CONSTRAINTS="OBEY",
                                            PREFER_PRECISION_CONSTRAINTS="PREFER")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.init_libnvinfer_plugins = lambda logger, namespace: log.setdefault("plugins_init", True)

    class ILogger:
        Severity = types.SimpleNamespace(INTERNAL_ERROR=_Severity(0, "INTERNAL_ERROR"), ERROR=_Severity(1, "ERROR"),
                                         WARNING=_Severity(2, "WARNING"), INFO=_Severity(3, "INFO"))

        def __init__(self) -> None:
            pass

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags, self.layers, self.inputs, self.outputs = flags, [], [], []
            self.num_layers = self.num_inputs = self.num_outputs = 0

        def get_layer(self, i):
            return self.layers[i]

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class ParserError:
        def __init__(self, index: int, node: onnx.NodeProto) -> None:
            self.index, self.onnx_node = index, node

        def node(self) -> int:
            return self.index

        def desc(self) -> str:
            return f"No importer registered for op: {self.onnx_node.op_type}"

        def code(self) -> str:
            return "ErrorCode.UNSUPPORTED_NODE"

    class OnnxParser:
        def __init__(self, network: Network, logger: ILogger) -> None:
            self.network, self.errors = network, []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

        def parse(self, data: bytes, path: str) -> bool:
            model = onnx.load_from_string(data)
            log["parsed"] = model
            self.errors = [ParserError(i, n) for i, n in enumerate(model.graph.node) if n.op_type == "Col2Im"]
            net = self.network
            net.layers = [_Layer(n) for n in model.graph.node]
            net.inputs = [_Tensor(v.name, tuple(d.dim_value or -1 for d in v.type.tensor_type.shape.dim))
                          for v in model.graph.input]
            net.outputs = [_Tensor(v.name, (-1,)) for v in model.graph.output]
            net.num_layers, net.num_inputs, net.num_outputs = len(net.layers), len(net.inputs), len(net.outputs)
            return not self.errors

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return self.data + b"+tactics"

    class Config:
        def __init__(self) -> None:
            self.flags, self.cleared, self.profiles, self.pool = set(), set(), [], {}

        def set_flag(self, flag):
            self.flags.add(flag)

        def clear_flag(self, flag):
            self.cleared.add(flag)

        def set_memory_pool_limit(self, pool, size):
            self.pool[pool] = size

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def create_timing_cache(self, data: bytes) -> TimingCache:
            log["timing_loaded"] = data
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch) -> bool:
            self.timing = cache
            return True

        def get_timing_cache(self) -> TimingCache:
            return self.timing

    class Profile:
        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name, lo, best, hi):
            self.shapes[name] = (list(lo), list(best), list(hi))

    class Builder:
        def __init__(self, logger: ILogger) -> None:
            log["builds"] = log.get("builds", 0) + 1

        def create_network(self, flags: int) -> Network:
            log["network"] = Network(flags)
            return log["network"]

        def create_builder_config(self) -> Config:
            log["config"] = Config()
            return log["config"]

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network, config) -> bytes:
            return b"ENGINE" + bytes(len(network.layers))

    trt.ILogger, trt.OnnxParser, trt.Builder = ILogger, OnnxParser, Builder
    return trt


@pytest.fixture
def fake(monkeypatch):
    """`fake(version) -> log`: install a stand-in tensorrt of `version` on a pretend H100."""
    def install(version: str) -> dict:
        log: dict = {}
        monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, log))
        monkeypatch.setattr(builder_module, "current_platform",
                            lambda device=0: Platform(version, "NVIDIA H100 80GB HBM3", "9.0"))
        return log
    return install


def gate_model(path: Path, col2im: bool = False) -> Path:
    """x (N, 4, H, W) -> Conv 1x1 -> ReduceMean over H, W -> Softmax over C -> x * weights."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32).reshape(4, 4, 1, 1), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/gate/conv/Conv"),
             helper.make_node("ReduceMean", ["c"], ["m"], name="/gate/ReduceMean", axes=[2, 3]),
             helper.make_node("Softmax", ["m"], ["s"], name="/gate/Softmax", axis=1),
             helper.make_node("Mul", ["x", "s"], ["y"], name="/Mul")]
    inits = [w]
    if col2im:
        inits += [numpy_helper.from_array(np.array(v, np.int64), n) for v, n in (([2, 2], "im"), ([1, 1], "blk"))]
        nodes.append(helper.make_node("Col2Im", ["y", "im", "blk"], ["z"], name="/head/fold/Col2Im"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])
    out = helper.make_tensor_value_info("z" if col2im else "y", TensorProto.FLOAT, ["N", 4, "H", "W"])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [out], inits),
                              opset_imports=[helper.make_opsetid("", 18 if col2im else 17)])
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("version, flags", [("8.6.1", 1), ("10.13.0.35", 0)])
def test_weakly_typed_fp32_build_and_cache(fake, tmp_path, version, flags):
    log = fake(version)
    onnx_path = gate_model(tmp_path / "gate.onnx")
    profile = derive_profile(onnx_path, (1, 4, 16, 16))
    engine, timing = tmp_path / "gate.engine", tmp_path / "timing.cache"
    res = build_engine(onnx_path, engine, profile=profile, timing_cache=timing, workspace_mb=256)
    config = log["config"]
    assert log["network"].flags == flags and "TF32" in config.cleared and "FP16" not in config.flags
    assert config.pool == {"WORKSPACE": 256 << 20}
    assert config.profiles[0].shapes == {"x": ([1, 4, 4, 4], [1, 4, 16, 16], [4, 4, 32, 32])}
    assert engine.read_bytes().startswith(b"ENGINE") and timing.read_bytes() == b"+tactics"
    meta = json.loads(sidecar_path(engine).read_text())
    assert meta["platform"]["tensorrt_version"] == version and meta["io"][0]["shape"] == [-1, 4, -1, -1]
    assert not res.cached and res.fp32_layers == []
    again = build_engine(onnx_path, engine, profile=profile, timing_cache=timing, workspace_mb=256)
    assert again.cached and log["builds"] == 1
    build_engine(onnx_path, engine, profile=profile, timing_cache=timing, workspace_mb=512)  # settings changed
    assert log["builds"] == 2 and log["timing_loaded"] == b"+tactics"  # the timing cache is reused


def test_weakly_typed_fp16_pins_layers(fake, tmp_path):
    log = fake("10.13.0.35")
    onnx_path = gate_model(tmp_path / "gate.onnx")
    res = build_engine(onnx_path, tmp_path / "gate.engine", fp16=True,
                       profile=derive_profile(onnx_path, (1, 4, 16, 16)))
    assert {"FP16", "OBEY"} <= log["config"].flags
    assert res.fp32_layers == ["/gate/ReduceMean", "/gate/Softmax"]
    pinned = [layer for layer in log["network"].layers if layer.precision == "fp32"]
    assert [layer.name for layer in pinned] == res.fp32_layers
    assert all(t.dtype == "fp32" for layer in pinned for t in layer.outputs)
    assert json.loads(sidecar_path(tmp_path / "gate.engine").read_text())["fp32_layers"] == res.fp32_layers


def test_strongly_typed_fp16_parses_a_converted_graph(fake, tmp_path):
    log = fake("11.1.0.106")
    onnx_path = gate_model(tmp_path / "gate.onnx")
    res = build_engine(onnx_path, tmp_path / "gate.engine", fp16=True,
                       profile=derive_profile(onnx_path, (1, 4, 16, 16)))
    assert log["network"].flags == 1 << 1 and "FP16" not in log["config"].flags and res.fp32_layers == []
    parsed = log["parsed"]
    assert any(t.data_type == TensorProto.FLOAT16 for t in parsed.graph.initializer)
    assert parsed.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert res.settings.strongly_typed and res.settings.keep_fp32_ops
    with pytest.raises(Exception, match="strongly typed networks only"):
        build_engine(onnx_path, tmp_path / "weak.engine", strongly_typed=False,
                     profile=derive_profile(onnx_path, (1, 4, 16, 16)))


def test_parser_errors_carry_node_and_scope(fake, tmp_path):
    fake("10.13.0.35")
    onnx_path = gate_model(tmp_path / "fold.onnx", col2im=True)
    with pytest.raises(EngineBuildFailed) as err:
        build_engine(onnx_path, tmp_path / "fold.engine", profile=derive_profile(onnx_path, (1, 4, 2, 2)))
    text = str(err.value)
    assert "node /head/fold/Col2Im (Col2Im) in module 'head.fold': No importer registered for op: Col2Im" in text
    assert "--trt 10" in text and not (tmp_path / "fold.engine").exists()


def test_dynamic_model_without_profile_is_a_usage_error(fake, tmp_path):
    fake("10.13.0.35")
    with pytest.raises(Exception, match="an example shape or --opt is needed"):
        build_engine(gate_model(tmp_path / "gate.onnx"), tmp_path / "gate.engine")
