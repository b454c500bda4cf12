"""fp16 for both TensorRT API generations: the fp32 plan, its layer pinning, and the ONNX fp16 rewrite.

The rewritten graphs run in onnxruntime (CPU) against eager PyTorch within the fp16
tolerances (atol 1e-2, rtol 1e-2, cosine >= 0.999), and the planned ops are asserted to
still be fp32 in the graph. Note: ORT 1.31's CPU EP has no fp16 kernel for Conv, MatMul,
Add, Mul, Sub, Sigmoid (it wraps them in Casts and computes in fp32), so these tests check
the rewrite and fp16 storage/rounding; fp16 arithmetic is checked by the engine tests.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import attndeploy
from attndeploy.errors import UsageError
from attndeploy.truth import truth_for
from attndeploy.verdict import Budget, judge
from attndeploy.precision.fp16 import convert_onnx_to_fp16
from attndeploy.precision.plan import (
    KEEP_FP32_OPS,
    fp32_plan,
    graph_fp32_plan,
    graph_precision,
)
from attndeploy.registry import Tolerance
from attndeploy.tensorrt.precision import apply_fp32_plan, layer_node_name

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_TOL = Tolerance(1e-2, 1e-2)
MIN_COSINE = 0.999
REPRESENTATIVE = [("cbam", 17), ("gcnet", 17), ("gcnet", 16), ("selfattn", 17), ("nonlocal", 17)]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """`zoo(name, opset) -> Path` of a parity-checked export, exported once per module."""
    made: dict[tuple[str, int], Path] = {}

    def get(name: str, opset: int = 17) -> Path:
        if (name, opset) not in made:
            res = attndeploy.export(name, None, tmp_path_factory.mktemp(f"{name}{opset}") / f"{name}.onnx",
                                    opset=opset)
            assert res.parity.passed
            made[(name, opset)] = res.onnx_path
        return made[(name, opset)]

    return get


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, check_type=True)
    g = inferred.graph
    found = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
    found.update({t.name: t.data_type for t in g.initializer})
    for n in g.node:
        if n.op_type == "Constant":
            found.update({o: a.t.data_type for o in n.output for a in n.attribute if a.name == "value"})
    return found


def assert_mixed_precision(original: onnx.ModelProto, converted: onnx.ModelProto) -> None:
    """IO stays float32; planned nodes compute in fp32; the rest of the float math is fp16."""
    plan = fp32_plan(original)
    pinned = {p.node for p in plan}
    assert pinned, "the plan pins nothing"
    types_ = elem_types(converted)
    for value in (*converted.graph.input, *converted.graph.output):
        assert value.type.tensor_type.elem_type == FLOAT, value.name
    by_name = {n.name: n for n in converted.graph.node}
    for name in pinned:
        node = by_name[name]
        floats = [types_[t] for t in (*node.input, *node.output) if t and types_.get(t) in (FLOAT, FLOAT16)]
        assert floats and all(t == FLOAT for t in floats), f"{node.op_type} {name} is not fp32: {floats}"
    for node in converted.graph.node:
        if node.op_type in KEEP_FP32_OPS:
            assert types_[node.output[0]] == FLOAT, f"{node.op_type} {node.name} left fp32"
    heavy = [n for n in converted.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.name not in pinned]
    assert heavy and all(types_[n.output[0]] == FLOAT16 for n in heavy)


def fp16_parity(name: str, converted: onnx.ModelProto):
    session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    model = attndeploy.randomize_(attndeploy.create(name), 0).eval()  # the weights export(name) used
    spec = attndeploy.get_spec(name)
    names = [o.name for o in session.get_outputs()]
    return judge(truth_for(model, spec.parity_shapes()).probes, lambda x: session.run(None, {"input": x}), names,
                 Budget.given(FP16_TOL.atol, FP16_TOL.rtol), ("fp16", "onnxruntime-cpu"))


@pytest.mark.parametrize("name, opset", REPRESENTATIVE)
def test_fp16_graph_keeps_planned_ops_fp32_and_passes_parity(zoo, name, opset):
    original = onnx.load(zoo(name, opset))
    converted = convert_onnx_to_fp16(original)
    assert_mixed_precision(original, converted)
    report = fp16_parity(name, converted)
    assert report.passed, report.failure_message()
    assert min(o.min_cosine for o in report.outputs) >= MIN_COSINE


def test_plan_names_attention_energies_and_their_projections(zoo):
    plan = {p.node: p for p in fp32_plan(onnx.load(zoo("nonlocal")))}
    assert {"/MatMul", "/Softmax", "/theta/Conv", "/phi/Conv"} <= set(plan)
    assert "/g/Conv" not in plan and "/W/Conv" not in plan  # value and output projections stay fp16
    assert "attention energies" in plan["/MatMul"].reason
    assert plan["/Softmax"].outputs == ("/Softmax_output_0",)


def test_plan_finds_the_decomposed_layernorm(zoo):
    plan = fp32_plan(onnx.load(zoo("gcnet", 16)))
    ops = sorted(p.op_type for p in plan if p.node.startswith("/channel_add_conv/channel_add_conv.1/"))
    assert ops == ["Add", "Div", "Pow", "ReduceMean", "ReduceMean", "Sqrt", "Sub"]
    assert any("decomposition" in p.reason for p in plan if p.op_type == "Pow")
    assert not [p for p in fp32_plan(onnx.load(zoo("gcnet", 16)), layernorm_decomposition=False)
                if p.op_type in ("Pow", "Sqrt", "Div")]


def test_gridsample_coordinates_stay_fp32(zoo):
    """Deformable conv below opset 19 samples with GridSample: fp16 positions fail parity (max abs 0.02)."""
    original = onnx.load(zoo("deformconv", 17))
    plan = {p.node: p for p in fp32_plan(original)}
    sample = next(n for n in original.graph.node if n.op_type == "GridSample")
    assert sample.name in plan and "GridSample" in plan[sample.name].reason
    converted = convert_onnx_to_fp16(original)
    types_ = elem_types(converted)
    sample = next(n for n in converted.graph.node if n.op_type == "GridSample")
    assert [types_[t] for t in sample.input[:2]] == [FLOAT, FLOAT]
    assert any(n.op_type == "MatMul" and types_[n.output[0]] == FLOAT16 for n in converted.graph.node)
    report = fp16_parity("deformconv", converted)
    assert report.passed, report.failure_message()
    assert min(o.min_cosine for o in report.outputs) >= MIN_COSINE


def test_keep_io_types_false_gives_fp16_edges(zoo):
    converted = convert_onnx_to_fp16(onnx.load(zoo("cbam")), keep_io_types=False)
    assert converted.graph.input[0].type.tensor_type.elem_type == FLOAT16
    assert converted.graph.output[0].type.tensor_type.elem_type == FLOAT16
    session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.ones((1, 64, 9, 7), np.float16)})[0]
    assert out.dtype == np.float16 and out.shape == (1, 64, 9, 7)


def test_graph_precision_and_what_a_reduced_graph_keeps_fp32(zoo):
    original = onnx.load(zoo("cbam"))
    converted = convert_onnx_to_fp16(original)
    assert graph_precision(original) == "fp32" and graph_precision(converted) == "fp16"
    kept = {p.node: p for p in graph_fp32_plan(converted)}  # what an 8.6 build of the fp16 graph pins
    planned = {p.node for p in fp32_plan(original) if p.op_type not in ("Cast", "Identity")}
    assert planned and planned <= set(kept)
    ops = {n.name: n.op_type for n in converted.graph.node}
    assert not [n for n in kept if ops[n] in ("Cast", "Conv")]
    qdq = _graph([helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="/q"),
                  helper.make_node("DequantizeLinear", ["q", "s"], ["y"], name="/dq")],
                 [numpy_helper.from_array(np.array(0.1, np.float32), "s")])
    assert graph_precision(qdq) == "int8" and graph_fp32_plan(qdq) == []


def _graph(nodes, inits=(), opset=17):
    x = helper.make_tensor_value_info("x", FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", FLOAT, [2, 3])
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], list(inits)),
                             opset_imports=[helper.make_opsetid("", opset)])


def test_large_constants_are_clipped_to_fp16_range():
    big = numpy_helper.from_array(np.full((1, 3), 1e6, np.float32), "big")
    converted = convert_onnx_to_fp16(_graph([helper.make_node("Mul", ["x", "big"], ["y"], name="/Mul")], [big]))
    (init,) = converted.graph.initializer
    assert init.data_type == FLOAT16 and float(numpy_helper.to_array(init).max()) == 65504.0


def test_plugin_nodes_compute_in_fp32():
    w = numpy_helper.from_array(np.ones((3, 3), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="/MatMul"),
             helper.make_node("MyPlugin", ["h"], ["p"], name="/plugin", domain="custom"),
             helper.make_node("Add", ["p", "h"], ["y"], name="/Add")]
    model = _graph(nodes, [w])
    model.opset_import.append(helper.make_opsetid("custom", 1))
    converted = convert_onnx_to_fp16(model)
    by_name = {n.name: n for n in converted.graph.node}
    cast_of = {n.output[0]: n for n in converted.graph.node if n.op_type == "Cast"}
    plugin_in = by_name["/plugin"].input[0]
    assert cast_of[plugin_in].attribute[0].i == FLOAT  # the plugin gets fp32
    add_inputs = by_name["/Add"].input
    assert add_inputs[0] in cast_of and cast_of[add_inputs[0]].attribute[0].i == FLOAT16  # its output is cast back


def test_control_flow_is_refused():
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "b", [],
                               [helper.make_tensor_value_info("t", FLOAT, [2, 3])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    model = _graph([helper.make_node("If", ["cond"], ["y"], name="/If", then_branch=branch, else_branch=branch)],
                   [cond])
    with pytest.raises(UsageError, match="control flow"):
        convert_onnx_to_fp16(model)


def test_layer_names_map_back_to_nodes():
    assert layer_node_name("whatever", "[ONNX Layer: /attn/Softmax | Local Function: f]") == ("/attn/Softmax", None)
    assert layer_node_name("/attn/Softmax_1", "") == ("/attn/Softmax_1", "/attn/Softmax")
    assert layer_node_name("/attn/Softmax", "") == ("/attn/Softmax", None)


class _Tensor:
    def __init__(self, name: str, dtype: object) -> None:
        self.name, self.dtype = name, dtype


class _Layer:
    def __init__(self, name: str, kind: object, outputs: list[_Tensor], metadata: str = "") -> None:
        self.name, self.type, self.metadata, self._outputs = name, kind, metadata, outputs
        self.precision = None
        self.output_types: dict[int, object] = {}

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_output(self, j: int) -> _Tensor:
        return self._outputs[j]

    def set_output_type(self, j: int, dtype: object) -> None:
        self.output_types[j] = dtype


def test_apply_fp32_plan_pins_matching_layers(monkeypatch):
    """The weakly typed path, against a stand-in for tensorrt (the real one needs a GPU)."""
    fake = types.SimpleNamespace(float32="fp32", float16="fp16", int64="i64",
                                 LayerType=types.SimpleNamespace(CONSTANT="constant", SHAPE="shape", OTHER="other"))
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    layers = [
        _Layer("/attn/MatMul", "other", [_Tensor("/attn/MatMul_output_0", "fp32")]),
        _Layer("/attn/Softmax_1", "other", [_Tensor("t1", "fp32")]),  # 2nd layer of the Softmax node
        _Layer("renamed", "other", [_Tensor("t2", "fp32")], metadata="[ONNX Layer: /ln/LayerNormalization]"),
        _Layer("/attn/Softmax_shape", "shape", [_Tensor("s", "i64")]),
        _Layer("/proj/Conv", "other", [_Tensor("c", "fp32")]),
    ]
    network = types.SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])
    plan = [p for p in fp32_plan(_attention_graph())]
    pinned = apply_fp32_plan(network, plan)  # a stand-in network
    assert pinned == ["/attn/MatMul", "/attn/Softmax_1", "renamed"]
    assert all(layer.precision == "fp32" and layer.output_types == {0: "fp32"} for layer in layers[:3])
    assert layers[3].precision is None and layers[4].precision is None


def _attention_graph() -> onnx.ModelProto:
    """x (2, 3) -> MatMul(x, x^T) -> Softmax, plus a LayerNormalization: names as the plan sees them."""
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="/attn/Transpose"),
             helper.make_node("MatMul", ["x", "xt"], ["/attn/MatMul_output_0"], name="/attn/MatMul"),
             helper.make_node("Softmax", ["/attn/MatMul_output_0"], ["p"], name="/attn/Softmax"),
             helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], name="/ln/LayerNormalization")]
    inits = [numpy_helper.from_array(np.ones(3, np.float32), n) for n in ("scale", "bias")]
    return _graph(nodes, inits)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in attndeploy.list_modules() if n != "deformconv"])
def test_whole_registry_fp16(tmp_path, name):
    res = attndeploy.export(name, None, tmp_path / f"{name}.onnx", opset=17)
    original = onnx.load(res.onnx_path)
    converted = convert_onnx_to_fp16(original)
    types_ = elem_types(converted)
    for node in converted.graph.node:
        if node.op_type in KEEP_FP32_OPS:
            assert types_[node.output[0]] == FLOAT
    report = fp16_parity(name, converted)
    assert report.passed, report.failure_message()
    assert min(o.min_cosine for o in report.outputs) >= MIN_COSINE
