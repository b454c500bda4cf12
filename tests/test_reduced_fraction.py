"""The wrong INT8 PASS (issue 18): a graph asked for at a precision must be at it. `TINY` (a 3 -> 4 conv) with data
that quantizes nothing, a search that leaves everything float, or a policy that keeps everything fp32: never PASSED,
exit 1, the kept file is the `.rejected.onnx`, and the report states the share of weighted ops at the precision.
The same runs with ordinary settings pass with every weighted op at the precision (the control)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tests.bad_input_helpers import TINY, TINY_INPUT, run_main

QDQ = {"QuantizeLinear", "DequantizeLinear"}


def _export(capsys, folder, *options: str):
    out = folder / "out"
    run = run_main(capsys, "export", TINY, *TINY_INPUT, *options, "--out", str(out), "--json")
    report = json.loads((out / "report.json").read_text())
    return run, run.json(), report, out


def _verdict(result: dict, precision: str) -> dict:
    return result["parities"][f"{precision}/onnxruntime-cpu"]


@pytest.fixture
def calibration(tmp_path):
    def make(value: float | None) -> str:
        data = (np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32) if value is None
                else np.full((8, 3, 16, 16), value, np.float32))
        np.save(tmp_path / "cal.npy", data)
        return str(tmp_path / "cal.npy")
    return make


@pytest.mark.parametrize("case,options", [
    ("calibration of 1e37", lambda cal: ["--calib", cal(1e37)]),
    ("a target the search cannot reach", lambda cal: ["--calib", cal(None), "--int8-target", "0.9999999"]),
    ("every module kept fp32", lambda cal: ["--calib", cal(None), "--keep-fp32", "*"]),
])
def test_an_int8_graph_with_nothing_quantized_is_never_passed(case, options, calibration, tmp_path, capsys):
    run, result, report, out = _export(capsys, tmp_path, "--precision", "int8", *options(calibration))
    assert run.code == 1, run.err
    int8 = _verdict(result, "int8")
    assert result["passed"] is False and int8["passed"] is False
    assert int8["reduced_fraction"] == 0.0 and "0 of 1 weighted ops at int8" in int8["notes"]
    assert _verdict(report, "int8")["reduced_fraction"] == 0.0  # report.json says the same
    assert "no weighted op runs at int8" in run.err
    assert not (out / "tiny.int8.onnx").exists()
    kept = onnx.load(str(out / "tiny.int8.rejected.onnx"))
    assert not QDQ & {n.op_type for n in kept.graph.node}


def test_an_fp16_graph_with_every_op_kept_fp32_is_never_passed(tmp_path, capsys):
    run, result, report, out = _export(capsys, tmp_path, "--precision", "fp16", "--keep-fp32", "*")
    assert run.code == 1, run.err
    fp16 = _verdict(result, "fp16")
    assert fp16["passed"] is False and fp16["reduced_fraction"] == 0.0 and "0 of 1 weighted ops at fp16" in fp16["notes"]
    assert not (out / "tiny.fp16.onnx").exists() and (out / "tiny.fp16.rejected.onnx").exists()


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_the_control_passes_with_every_weighted_op_at_the_precision(precision, calibration, tmp_path, capsys):
    more = ["--calib", calibration(None)] if precision == "int8" else []
    run, result, report, out = _export(capsys, tmp_path, "--precision", precision, *more)
    assert run.code == 0, run.err
    verdict = _verdict(result, precision)
    assert verdict["passed"] is True and verdict["reduced_fraction"] == 1.0
    assert f"1 of 1 weighted ops at {precision}" in verdict["notes"]
    graph = onnx.load(str(out / f"tiny.{precision}.onnx")).graph
    if precision == "int8":
        assert QDQ <= {n.op_type for n in graph.node}
    else:
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
