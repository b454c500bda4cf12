"""What stays ours in a build, against a stand-in `tensorrt` (the real one needs a GPU).

Network creation goes through Polygraphy's `CreateNetwork` (flags per TensorRT
generation) and then our parse (parser errors with node and module scope) and our fp32
pinning as a Polygraphy post-processing step; `build_engine`'s engine cache (hit, miss,
rebuild, the sidecar) runs with Polygraphy's config-and-build call (`run_plan`) replaced.
The plan's loaders are checked in test_tensorrt_plan.py; real engines are built and
checked against eager PyTorch in test_tensorrt_engine.py where TensorRT runs.
"""

from __future__ import annotations

import json
import sys
import types

import onnx
import polygraphy.backend.trt.loader as polygraphy_loader
import polygraphy.backend.trt.util as polygraphy_util
import pytest
from onnx import TensorProto

from attndeploy.errors import UsageError
from attndeploy.tensorrt import builder as builder_module
from attndeploy.tensorrt.builder import build_engine
from attndeploy.tensorrt.cache import Platform, sidecar_path
from attndeploy.tensorrt.network import EngineBuildFailed
from attndeploy.tensorrt.options import BuildOptions
from attndeploy.tensorrt.plan import BuildPlan
from attndeploy.tensorrt.profiles import derive_profile
from tests.test_tensorrt_plan import PROFILE, TRT8, TRT10, TRT11, gate_model, plan_for


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
    trt.LayerType = types.SimpleNamespace(CONSTANT="constant", SHAPE="shape")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    trt.init_libnvinfer_plugins = lambda logger, namespace: log.setdefault("plugins_init", True)

    class ILogger:
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

    class Builder:
        def __init__(self, logger: ILogger) -> None:
            pass

        def create_network(self, flags: int) -> Network:
            log["network"] = Network(flags)
            return log["network"]

    trt.ILogger, trt.OnnxParser, trt.Builder = ILogger, OnnxParser, Builder
    return trt


@pytest.fixture
def fake(monkeypatch):
    """`fake(version) -> log`: a stand-in tensorrt of `version` (for us and Polygraphy) on a pretend H100.

    `build_engine`'s last step (Polygraphy's config and build, `run_plan`) is replaced: it
    runs the plan's network loaders against the stand-in and returns made-up engine bytes.
    """
    def install(version: str) -> dict:
        log: dict = {"builds": 0}
        trt = fake_tensorrt(version, log)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(polygraphy_loader, "trt", trt)
        monkeypatch.setattr(polygraphy_util, "trt", trt)
        monkeypatch.setattr(polygraphy_util, "TRT_LOGGER", None)
        monkeypatch.setattr(builder_module, "current_platform",
                            lambda device=0: Platform(version, "NVIDIA H100 80GB HBM3", "9.0"))

        def run_plan(plan: BuildPlan, label: str) -> tuple[bytes, list[str]]:
            _, network, *_ = plan.network()
            log["builds"] += 1
            log["plan"] = plan
            return b"ENGINE" + bytes(network.num_layers), ["[W] a builder warning"]

        monkeypatch.setattr(builder_module, "run_plan", run_plan)
        return log
    return install


@pytest.mark.parametrize("version, options, flags", [
    (TRT8, {}, 1 << 0),                       # explicit batch (Polygraphy sets it below TensorRT 10)
    (TRT10, {}, 0),
    (TRT11, {}, 1 << 1),                      # STRONGLY_TYPED
    (TRT10, {"precision": "fp16"}, 0),        # weakly typed fp16
])
def test_network_flags_per_generation(fake, version, options, flags):
    log = fake(version)
    plan = plan_for(gate_model(), version, **options)
    builder, network, parser = plan.parse()
    assert network is log["network"] and network.flags == flags and log["plugins_init"]
    assert plan.parse.io[0] == {"name": "x", "mode": "input", "dtype": "float32", "shape": [-1, 4, -1, -1]}


def test_pinning_runs_as_a_polygraphy_postprocessing_step(fake):
    log = fake(TRT10)
    plan = plan_for(gate_model(), TRT10, precision="fp16")
    plan.network()
    pinned = [layer for layer in log["network"].layers if layer.precision == "fp32"]
    assert plan.pin is not None and plan.pin.pinned == [layer.name for layer in pinned]
    assert plan.pin.pinned == ["/gate/ReduceMean", "/gate/Softmax"]
    assert all(t.dtype == "fp32" for layer in pinned for t in layer.outputs)


def test_parser_errors_carry_node_and_scope(fake, tmp_path):
    fake(TRT10)
    onnx_path = tmp_path / "fold.onnx"
    model = gate_model(onnx_path, col2im=True)
    with pytest.raises(EngineBuildFailed) as err:
        build_engine(onnx_path, tmp_path / "fold.engine", profile=derive_profile(model, (1, 4, 2, 2)))
    text = str(err.value)
    assert "node /head/fold/Col2Im (Col2Im) in module 'head.fold': No importer registered for op: Col2Im" in text
    assert "--trt 10" in text and not (tmp_path / "fold.engine").exists()


# -- build_engine: the engine cache around the plan -----------------------------------------------------------------

@pytest.mark.parametrize("version", [TRT8, TRT10])
def test_engine_cache_hit_miss_and_rebuild(fake, tmp_path, version):
    log = fake(version)
    onnx_path = tmp_path / "gate.onnx"
    gate_model(onnx_path)
    engine, timing = tmp_path / "gate.engine", tmp_path / "cache" / "timing.cache"
    options = BuildOptions(workspace_mb=256, timing_cache=timing)
    res = build_engine(onnx_path, engine, options, profile=PROFILE)
    assert not res.cached and log["builds"] == 1 and engine.read_bytes().startswith(b"ENGINE")
    assert timing.parent.is_dir() and res.warnings == ["[W] a builder warning"]
    meta = json.loads(sidecar_path(engine).read_text())
    assert meta["platform"]["tensorrt_version"] == version and meta["io"][0]["shape"] == [-1, 4, -1, -1]
    assert meta["settings"]["tf32"] is False and meta["settings"]["precision_in_graph"] is False
    assert res.fp32_layers == [] and res.settings.strongly_typed is False
    again = build_engine(onnx_path, engine, options, profile=PROFILE)
    assert again.cached and again.key == res.key and log["builds"] == 1
    build_engine(onnx_path, engine, options, profile=PROFILE, rebuild=True)
    assert log["builds"] == 2
    changed = build_engine(onnx_path, engine, BuildOptions(workspace_mb=512, timing_cache=timing), profile=PROFILE)
    assert not changed.cached and log["builds"] == 3 and "settings changed" in changed.reason


def test_fp16_build_records_the_pinned_layers(fake, tmp_path):
    fake(TRT10)
    onnx_path = tmp_path / "gate.onnx"
    gate_model(onnx_path)
    res = build_engine(onnx_path, tmp_path / "gate.engine", BuildOptions(precision="fp16"), profile=PROFILE)
    assert res.fp32_layers == ["/gate/ReduceMean", "/gate/Softmax"]
    assert json.loads(sidecar_path(tmp_path / "gate.engine").read_text())["fp32_layers"] == res.fp32_layers
    assert res.settings.keep_fp32_ops and not res.settings.strongly_typed


def test_strongly_typed_fp16_build_records_the_flow(fake, tmp_path):
    log = fake(TRT11)
    onnx_path = tmp_path / "gate.onnx"
    gate_model(onnx_path)
    res = build_engine(onnx_path, tmp_path / "gate.engine", BuildOptions(precision="fp16"), profile=PROFILE)
    assert res.settings.strongly_typed and res.settings.keep_fp32_ops and res.fp32_layers == []
    assert any(t.data_type == TensorProto.FLOAT16 for t in log["parsed"].graph.initializer)
    assert log["network"].flags == 1 << 1


def test_dynamic_model_without_profile_is_a_usage_error(fake, tmp_path):
    fake(TRT10)
    gate_model(tmp_path / "gate.onnx")
    with pytest.raises(UsageError, match="an example shape or --opt is needed"):
        build_engine(tmp_path / "gate.onnx", tmp_path / "gate.engine")
