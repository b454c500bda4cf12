"""The build plan without TensorRT: which Polygraphy loaders, with which arguments, each TensorRT generation gets.

`plan_build` constructs Polygraphy's loaders with `tensorrt` blocked (they import it only
when called), so these tests read what each generation is asked to do from the loaders'
attributes: TF32 cleared, FP16 + OBEY with pinned layers (8.6 / 10), a pre-converted fp16
ONNX under STRONGLY_TYPED (11), graphs that carry their precision (mixed fp16, Q/DQ int8),
the profile, the workspace and the timing cache; and how a failed build is reported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attndeploy.errors import UsageError
from attndeploy.precision.fp16 import convert_onnx_to_fp16
from attndeploy.tensorrt.builder import run_plan
from attndeploy.tensorrt.network import EngineBuildFailed
from attndeploy.tensorrt.options import BuildOptions
from attndeploy.tensorrt.plan import BuildPlan, plan_build
from attndeploy.tensorrt.profiles import derive_profile

TRT8, TRT10, TRT11 = "8.6.1", "10.13.0.35", "11.1.0.106"


def gate_model(path: Path | None = None, col2im: bool = False) -> onnx.ModelProto:
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
    if path is not None:
        onnx.save(model, path)
    return model


def qdq_model() -> onnx.ModelProto:
    """x -> QuantizeLinear -> DequantizeLinear -> Conv (int8 weights through DQ): an explicit int8 graph."""
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.ones((4, 4, 1, 1), np.int8), "wq"),
             numpy_helper.from_array(np.full(4, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(4, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="/q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="/dq"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="/w/dq", axis=0),
             helper.make_node("Conv", ["xd", "w"], ["y"], name="/conv/Conv")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H", "W"])
    return helper.make_model(helper.make_graph(nodes, "q", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)])


PROFILE = derive_profile(gate_model(), (1, 4, 16, 16))


@pytest.fixture
def no_tensorrt(monkeypatch):
    """`import tensorrt` raises: whatever runs under it needs no TensorRT."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def plan_for(model: onnx.ModelProto, version: str, **options) -> BuildPlan:
    major = int(version.split(".")[0])
    return plan_build(model.SerializeToString(), model, PROFILE, BuildOptions(**options), major, "gate.onnx")


# -- the plan: Polygraphy's loaders and their arguments, built with tensorrt blocked ----------------------------------

@pytest.mark.parametrize("version, strong", [(TRT8, False), (TRT10, False), (TRT11, True)])
def test_fp32_plan_per_generation(no_tensorrt, tmp_path, version, strong):
    timing = tmp_path / "timing.cache"
    plan = plan_for(gate_model(), version, workspace_mb=256, timing_cache=timing)
    config = plan.config
    assert plan.parse.strongly_typed is strong and plan.pin is None and plan.network is plan.parse
    assert config.tf32 is False and config.fp16 is False and config.int8 is False
    assert config.precision_constraints is None
    assert config.memory_pool_limits.limits == {"WORKSPACE": 256 << 20}
    shapes = config.profiles[0]["x"]
    assert (shapes.min, shapes.opt, shapes.max) == ((1, 4, 4, 4), (1, 4, 16, 16), (4, 4, 32, 32))
    assert config.timing_cache_path is None and plan.engine.timing_cache_path == str(timing)  # no cache file yet
    timing.write_bytes(b"tactics")
    again = plan_for(gate_model(), version, timing_cache=timing)
    assert again.config.timing_cache_path == str(timing)  # loaded before the build, extended after it


@pytest.mark.parametrize("version", [TRT8, TRT10])
def test_weakly_typed_fp16_sets_the_flag_and_pins_the_plan(no_tensorrt, version):
    plan = plan_for(gate_model(), version, precision="fp16")
    assert plan.config.fp16 is True and plan.config.precision_constraints == "obey"
    assert [p.node for p in plan.strategy.pins] == ["/gate/ReduceMean", "/gate/Softmax"]
    assert plan.pin is not None and plan.network._network is plan.parse and plan.network._func is plan.pin
    assert plan.engine._network is plan.network and plan.engine._config is plan.config
    assert plan_for(gate_model(), version, precision="fp16",
                    precision_constraints="prefer").config.precision_constraints == "prefer"


def test_strongly_typed_fp16_parses_a_converted_graph(no_tensorrt):
    model = gate_model()
    plan = plan_for(model, TRT11, precision="fp16")
    parsed = plan.parse.model
    assert plan.parse.strongly_typed and plan.config.fp16 is False and plan.pin is None
    assert any(t.data_type == TensorProto.FLOAT16 for t in parsed.graph.initializer)
    assert parsed.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert plan.parse.model_bytes == parsed.SerializeToString() != model.SerializeToString()
    with pytest.raises(UsageError, match="strongly typed networks only"):
        plan_for(model, TRT11, precision="fp16", strongly_typed=False)
    with pytest.raises(UsageError, match="strongly typed networks need TensorRT >= 10"):
        plan_for(model, TRT8, strongly_typed=True)


@pytest.mark.parametrize("version, strong", [(TRT8, False), (TRT10, True), (TRT11, True)])
def test_fp16_graph_builds_as_it_is(no_tensorrt, version, strong):
    reduced = convert_onnx_to_fp16(gate_model())
    plan = plan_for(reduced, version, precision="fp16", precision_in_graph=True)
    assert plan.parse.strongly_typed is strong and plan.parse.model is reduced  # not converted again
    assert plan.config.fp16 is (not strong) and plan.config.int8 is False
    if strong:
        assert plan.pin is None and plan.config.precision_constraints is None
    else:  # 8.6: the FP16 flag, with what the graph computes in float32 pinned and obeyed
        pinned = {p.node for p in plan.strategy.pins}
        assert {"/gate/ReduceMean", "/gate/Softmax"} <= pinned and "/gate/conv/Conv" not in pinned
        assert plan.config.precision_constraints == "obey"


@pytest.mark.parametrize("version, strong", [(TRT8, False), (TRT10, True), (TRT11, True)])
def test_qdq_graph_builds_int8(no_tensorrt, version, strong):
    plan = plan_for(qdq_model(), version, precision="int8", precision_in_graph=True)
    assert plan.parse.strongly_typed is strong and plan.config.fp16 is False
    assert plan.config.int8 is (not strong)
    assert plan.config.precision_constraints == (None if strong else "obey")


def test_precision_options_are_checked(no_tensorrt):
    with pytest.raises(UsageError, match="int8 engines build from an explicit Q/DQ graph"):
        BuildOptions(precision="int8")
    with pytest.raises(UsageError, match="the ONNX model must already be fp16"):
        plan_for(gate_model(), TRT10, precision="fp16", precision_in_graph=True)
    with pytest.raises(UsageError, match="the ONNX model must already be int8"):
        plan_for(convert_onnx_to_fp16(gate_model()), TRT10, precision="int8", precision_in_graph=True)
    with pytest.raises(UsageError, match="precision must be a supported engine precision"):
        BuildOptions(precision="fp8")
    other = derive_profile(qdq_model(), (1, 4, 8, 8))
    renamed = onnx.ModelProto()
    renamed.CopyFrom(gate_model())
    renamed.graph.input[0].name = "image"
    with pytest.raises(UsageError, match="cover every model input"):
        plan_build(b"", renamed, other, BuildOptions(), 10)


def test_run_plan_reports_the_builders_errors(no_tensorrt):
    from polygraphy.logger import G_LOGGER

    def failing() -> bytes:
        G_LOGGER.error("[layer /attn/MatMul] no implementation obeys the requested constraints")
        G_LOGGER.critical("Invalid Engine. Please ensure the engine was built correctly")

    def working() -> bytes:
        G_LOGGER.warning("Detected layernorm nodes in FP16")
        return b"engine"

    plan = plan_for(gate_model(), TRT10)
    with pytest.raises(EngineBuildFailed, match=r"could not build gate.onnx: \[E\] \[layer /attn/MatMul\] no impl"):
        run_plan(BuildPlan(plan.strategy, plan.parse, None, plan.network, plan.config, failing), "gate.onnx")
    engine, warnings = run_plan(BuildPlan(plan.strategy, plan.parse, None, plan.network, plan.config, working), "g")
    assert engine == b"engine" and warnings == ["[W] Detected layernorm nodes in FP16"]
