"""Reduced precision without a GPU (issue 13): fp16 search and strict-fp16 evaluation, INT8 Q/DQ, reports, CLI errors.

Fast tests on small inputs (1x64x24x24); every registry module at its example shape is in
`test_precision_registry.py`, the YOLOv8n + CBAM detector in `test_precision_detector.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import attndeploy
from attndeploy.module_events import record_events
from attndeploy.defaults import FP16_MIN_COSINE, INT8_MIN_COSINE
from attndeploy.errors import CheckFailed, UsageError
from attndeploy.families.deformconv import DeformConvBlock
from attndeploy.lint import lint_onnx
from attndeploy.lowering.deformconv import PLUGIN_DOMAIN
from attndeploy.precision.fp16 import convert_onnx_to_fp16
from attndeploy.precision.int8 import Quantizer
from attndeploy.verdict.metrics import error_stats
from attndeploy.precision.modules import module_errors, worst_module
from attndeploy.precision.search import search_fp16
from attndeploy.precision.sensitivity import quantize_to_target
from attndeploy.precision.strict import run_model, run_strict
from attndeploy.precision.verify import verify_reduced
from attndeploy.registry import create
from attndeploy.weights import randomize_
from tests.test_adversarial_cli import run_cli

SHAPE = (1, 64, 24, 24)
SCALE = 100.0   # unscaled attention energies past fp16's 65504
@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """`graphs(name) -> (fp32 ModelProto, eager model)`: one fp32 export per module at SHAPE."""
    made: dict[str, tuple[onnx.ModelProto, torch.nn.Module]] = {}

    def get(name: str) -> tuple[onnx.ModelProto, torch.nn.Module]:
        if name not in made:
            res = attndeploy.export(name, SHAPE, tmp_path_factory.mktemp(name) / f"{name}.onnx")
            assert res.parity.passed
            made[name] = (onnx.load(str(res.onnx_path)), randomize_(create(name), 0).eval())
        return made[name]
    return get


def scaled_input(seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(SHAPE) * SCALE).astype(np.float32)


def eager(model: torch.nn.Module, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        return [model(torch.from_numpy(x)).numpy()]


@pytest.mark.parametrize("name", ["selfattn", "nonlocal"])
def test_naive_fp16_hides_overflow_from_plain_onnxruntime_but_not_from_strict(graphs, name):
    fp32, truth = graphs(name)
    x = scaled_input()
    ref = eager(truth, x)[0]
    naive = convert_onnx_to_fp16(fp32, keep_fp32_ops=(), static_plan=False)
    plain = run_model(naive, {"input": x})[0]
    assert np.isfinite(plain).all() and error_stats(ref, plain).cosine >= 0.9999   # plain onnxruntime: looks fine
    assert not np.isfinite(run_strict(naive, {"input": x})[0]).all()              # strict-fp16: inf


def _path_ops(model: onnx.ModelProto, start: str, end_op: str) -> list[onnx.NodeProto]:
    """The nodes from the tensor `start` down to the first `end_op` node (following first readers)."""
    readers = {i: n for n in model.graph.node for i in n.input}
    path, tensor = [], start
    while tensor in readers:
        node = readers[tensor]
        path.append(node)
        if node.op_type == end_op:
            break
        tensor = node.output[0]
    return path


@pytest.mark.parametrize("name", ["selfattn", "nonlocal"])
@pytest.mark.parametrize("static_plan", [False, True])
def test_search_keeps_energies_and_softmax_fp32_together(graphs, name, static_plan):
    fp32, truth = graphs(name)
    xs = [scaled_input(1), scaled_input(2)]
    found = search_fp16(fp32, xs, [eager(truth, x) for x in xs], "input", static_plan=static_plan)
    assert found.passed, found.rounds
    assert found.cosine["plain"] >= FP16_MIN_COSINE and found.cosine["strict"] >= FP16_MIN_COSINE
    by_op = {k.op_type: k for k in found.kept if "overflow" in k.by}
    assert {"MatMul", "Softmax"} <= set(by_op), found.kept
    assert by_op["MatMul"].module == "<root>" and "past" in by_op["MatMul"].reason   # named, with the evidence
    assert "<root>" in found.kept_by_module()
    matmul = next(n for n in found.model.graph.node if n.name == by_op["MatMul"].node)
    between = _path_ops(found.model, matmul.output[0], "Softmax")
    assert between[-1].op_type == "Softmax" and not [n for n in between if n.op_type == "Cast"]  # no fp16 round trip
    for x in xs:
        ref = eager(truth, x)[0]
        for got in (run_model(found.model, {"input": x})[0], run_strict(found.model, {"input": x})[0]):
            assert error_stats(ref, got).cosine >= FP16_MIN_COSINE


def test_fp16_pipeline_writes_a_checked_graph_with_its_report(tmp_path):
    res = attndeploy.export("selfattn", SHAPE, tmp_path / "sa.onnx", precision="fp16")
    assert res.precision == "fp16" and res.passed, res.parity.failure_message()
    assert res.onnx_path == tmp_path / "sa.fp16.onnx" and set(res.files) == {"fp32", "fp16"}
    for path in res.files.values():
        onnx.checker.check_model(onnx.load(path))   # topological order included
    report = res.parities[("fp16", "onnxruntime-cpu")].to_dict()
    assert report["passed"] and report["strict"]["passed"] and report["cosine_budget"] == FP16_MIN_COSINE
    assert {"cosine", "sqnr_db", "max_abs", "p99_rel", "finite"} <= set(report["metrics"]["output"])
    assert report["worst_module"]["path"] and [m["path"] for m in report["modules"]]
    assert "fp16_search" in report and json.loads(json.dumps(res.to_dict(), default=str))
    graph = onnx.load(str(res.onnx_path))
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in (*graph.graph.input, *graph.graph.output))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)


def test_keep_fp32_policy_in_module_terms(tmp_path):
    res = attndeploy.export("selfattn", SHAPE, tmp_path / "sa.onnx", precision="fp16", keep_fp32=("query_conv",))
    assert res.passed
    graph = onnx.load(str(res.onnx_path))
    conv = next(n for n in graph.graph.node if n.name == "/query_conv/Conv")
    weights = {t.name: t.data_type for t in graph.graph.initializer}
    assert weights[conv.input[1]] == onnx.TensorProto.FLOAT           # kept fp32 by the policy
    other = next(n for n in graph.graph.node if n.name == "/value_conv/Conv")
    assert weights[other.input[1]] == onnx.TensorProto.FLOAT16
    with pytest.raises(UsageError, match="matches no module"):
        attndeploy.export("selfattn", SHAPE, tmp_path / "b.onnx", precision="fp16", keep_fp32=("qeury_conv",))


def qdq_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def zero_points(model: onnx.ModelProto) -> list[np.ndarray]:
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return [init[n.input[2]] for n in qdq_nodes(model) if len(n.input) > 2 and n.input[2]]


def test_int8_pipeline_trt_flavour(tmp_path):
    calibration = np.random.default_rng(3).standard_normal((16, *SHAPE[1:])).astype(np.float32)
    res = attndeploy.export("cbam", SHAPE, tmp_path / "cbam.onnx", precision="int8", calibration=calibration)
    assert res.passed and res.onnx_path.name == "cbam.int8.onnx", res.parity.failure_message()
    assert res.parity.min_cosine >= INT8_MIN_COSINE
    graph = onnx.load(str(res.onnx_path))
    onnx.checker.check_model(graph)
    assert qdq_nodes(graph) and all(np.all(z == 0) for z in zero_points(graph))   # every zero point 0
    assert all(z.dtype == np.int8 for z in zero_points(graph))
    for trt in ("8.6", "10", "11"):
        assert not [f.format() for f in lint_onnx(graph, trt) if f.severity == "error"]
    search = res.parity.to_dict()["int8_search"]
    assert search["full_cosine"] >= INT8_MIN_COSINE and search["sensitivity"] == [] and search["excluded"] == []
    assert res.parity.reduced_fraction == 1.0  # every weighted op runs INT8


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_calibration_methods(graphs, method):
    fp32, truth = graphs("gc")
    data = np.random.default_rng(4).standard_normal((8, *SHAPE[1:])).astype(np.float32)
    x = np.random.default_rng(5).standard_normal(SHAPE).astype(np.float32)
    with Quantizer(fp32, data, "input", "trt", method) as quantizer:
        q8 = quantizer.quantize()
    assert all(np.all(z == 0) for z in zero_points(q8))
    assert error_stats(eager(truth, x)[0], run_model(q8, {"input": x})[0]).cosine >= INT8_MIN_COSINE


def test_ort_cpu_flavour_is_uint8_and_lint_says_tensorrt_refuses_it(graphs):
    fp32, _ = graphs("gc")
    data = np.random.default_rng(4).standard_normal((8, *SHAPE[1:])).astype(np.float32)
    with Quantizer(fp32, data, "input", "ort-cpu") as quantizer:
        q8 = quantizer.quantize()
    assert any(z.dtype == np.uint8 for z in zero_points(q8))
    rules = {f.rule for f in lint_onnx(q8, "10") if f.severity == "error"}
    assert {"qdq-type", "qdq-zero-point"} <= rules


def test_sensitivity_excludes_the_most_sensitive_modules_until_the_target(graphs):
    fp32, truth = graphs("selfattn")
    data = np.random.default_rng(6).standard_normal((8, *SHAPE[1:])).astype(np.float32)
    xs = [np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)]
    with Quantizer(fp32, data, "input") as quantizer:
        found = quantize_to_target(quantizer, xs, [eager(truth, x) for x in xs], target=0.999999)
    modules = [s.module for s in found.sensitivity]
    assert set(modules) >= {"query_conv", "key_conv", "value_conv"}
    assert found.excluded and found.excluded[0] == modules[0] and found.cosine > found.full_cosine


def test_sensitivity_goes_on_until_the_task_check_passes(graphs):
    """A cosine target the full graph meets and a task check it fails (its largest error, which the cosine hides):
    the search leaves units float until the check passes, and says why in its rounds."""
    fp32, truth = graphs("selfattn")
    data = np.random.default_rng(6).standard_normal((8, *SHAPE[1:])).astype(np.float32)
    xs = [np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)]
    refs = [eager(truth, x) for x in xs]

    def largest_error(model: onnx.ModelProto) -> float:
        return float(np.abs(run_model(model, {"input": xs[0]})[0] - refs[0][0]).max())

    with Quantizer(fp32, data, "input") as quantizer:
        limit = largest_error(quantizer.quantize()) / 2
        checked: list[float] = []

        def accept(model: onnx.ModelProto) -> tuple[bool, str]:
            checked.append(largest_error(model))
            return checked[-1] < limit, f"largest error {checked[-1]:.3g} (limit {limit:.3g})"

        cosine_only = quantize_to_target(quantizer, xs, refs, target=0.99)
        found = quantize_to_target(quantizer, xs, refs, target=0.99, accept=accept)
    assert cosine_only.full_cosine >= 0.99 and not cosine_only.excluded     # the cosine alone stops at once
    assert found.excluded and checked[0] >= limit
    assert largest_error(found.model) < limit and found.passed and found.task_passed
    assert any(r.startswith("cosine target met, task check failed: largest error") for r in found.rounds)


def test_module_errors_see_a_branch_the_output_hides(graphs):
    """A SAGAN query conv at 1.5x its weights: the block's output still looks close, its change does not."""
    fp32, truth = graphs("selfattn")
    bad = onnx.ModelProto()
    bad.CopyFrom(fp32)
    for t in bad.graph.initializer:
        if t.name == "query_conv.weight":
            t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t) * 1.5, t.name))
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    records = module_errors(record_events(truth, torch.from_numpy(x)), bad, x, "input")
    root = next(r for r in records if r["path"] == "<root>")
    assert root["change_sqnr_db"] < root["output_sqnr_db"] - 6     # the branch's own error is far larger
    worst = worst_module(records, FP16_MIN_COSINE)
    assert worst["path"] == "query_conv" and "query_conv" in worst["message"]


def test_verify_refuses_graphs_out_of_topological_order(graphs):
    fp32, _ = graphs("se")
    shuffled = onnx.ModelProto()
    shuffled.CopyFrom(fp32)
    nodes = list(shuffled.graph.node)[::-1]
    del shuffled.graph.node[:]
    shuffled.graph.node.extend(nodes)
    with pytest.raises(CheckFailed, match="fails onnx.checker: Nodes in a graph must be topologically sorted"):
        verify_reduced(shuffled, "the fp16 graph")


def test_cli_usage_errors_are_one_line_exit_2(tmp_path):
    wrong = tmp_path / "calib.npy"
    np.save(wrong, np.zeros((4, 3, 24, 24), np.float32))     # 3 channels for a 64-channel module
    cases = [(["se", "--precision", "int8"], "needs calibration data"),
             (["se", "--precision", "int4"], "unknown precision"),
             (["se", "--input", "1x64x24x24", "--precision", "int8", "--calib", str(wrong)], "channels")]
    for args, words in cases:  # run_cli holds each to one `error:` line, no traceback
        run = run_cli(tmp_path, "export", *args, "--out", str(tmp_path / "out"))
        assert run.code == 2 and words in run.last, (args, run.stderr[-800:])


def test_fp16_of_a_plugin_graph_searches_its_onnx_stand_in_and_keeps_the_plugin(tmp_path):
    """onnxruntime cannot run TensorRT's ModulatedDeformConv2d: the search runs the graph with ONNX DeformConv in its
    place, and the fp16 file keeps the plugin node (fp32, no fp16 schema) between Casts."""
    res = attndeploy.export(randomize_(DeformConvBlock(16, 16), 0), (1, 16, 16, 16), tmp_path / "m.onnx",
                            precision="fp16", deform_conv="plugin")
    assert res.passed, res.parities[("fp16", "onnxruntime-cpu")].failure_message()
    graph = onnx.load(res.files["fp16"])
    assert [(n.domain, n.op_type) for n in graph.graph.node if n.domain] == [(PLUGIN_DOMAIN, "ModulatedDeformConv2d")]
    assert any(n.op_type == "Cast" for n in graph.graph.node)
