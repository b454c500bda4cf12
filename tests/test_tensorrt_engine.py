"""TensorRT engines: build, cache, run, parity against eager PyTorch.

Everything that needs `tensorrt` and a CUDA GPU skips without them (with the reason);
the error paths for a missing TensorRT and the feed validation run everywhere.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import attndeploy
from attndeploy.defaults import TRT_FP16_MIN_COSINE, TRT_FP16_TOL, TRT_FP32_TOL, Tolerance
from attndeploy.errors import UsageError
from attndeploy.precision.fp16 import convert_onnx_to_fp16
from attndeploy.runtimes.feeds import InputProfile, IOSpec, validate_feeds
from attndeploy.settings import EngineSettings
from attndeploy.tensorrt._api import tensorrt_unavailable
from attndeploy.tensorrt.builder import BuildOptions, build_engine
from attndeploy.tensorrt.cache import sidecar_path
from attndeploy.tensorrt.deploy import engine_for_export
from attndeploy.tensorrt.network import EngineBuildFailed
from attndeploy.tensorrt.profiles import derive_profile
from attndeploy.tensorrt.runner import TensorRTRunner
from attndeploy.truth import truth_for
from attndeploy.verdict import Budget, judge
from attndeploy.verdict.budget import FP16_MIN_COSINE, INT8_MIN_COSINE

FP32_TOL, FP16_TOL = TRT_FP32_TOL, TRT_FP16_TOL  # TF32 off


@pytest.fixture
def gpu():
    """Skip unless TensorRT and Polygraphy import and a CUDA device is visible."""
    missing = tensorrt_unavailable()
    if missing is not None:
        pytest.skip(f"TensorRT engines cannot run here: {missing}")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: TensorRT engines need an NVIDIA GPU and driver")


def export(name: str, tmp_path: Path) -> tuple[Path, torch.nn.Module, attndeploy.ModuleSpec]:
    res = attndeploy.export(name, None, tmp_path / f"{name}.onnx", opset=17)
    assert res.parity.passed
    return res.onnx_path, attndeploy.randomize_(attndeploy.create(name), 0).eval(), attndeploy.get_spec(name)


def engine_parity(engine: Path, model: torch.nn.Module, spec: attndeploy.ModuleSpec, tol: Tolerance):
    with TensorRTRunner(engine) as runner:
        return judge(truth_for(model, spec.parity_shapes()).probes, lambda x: list(runner.infer({"input": x}).values()),
                     runner.output_names, Budget.given(tol.atol, tol.rtol), ("fp32", "tensorrt"))


def test_missing_tensorrt_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    with pytest.raises(UsageError) as err:
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine")
    assert "TensorRT is not installed" in str(err.value) and "pip install tensorrt" in str(err.value)
    with pytest.raises(UsageError, match="TensorRT is not installed"):
        TensorRTRunner(tmp_path / "m.engine").activate()
    with pytest.raises(UsageError, match="TensorRT is not installed"):
        engine_for_export(tmp_path / "m.onnx", EngineSettings(), [])
    assert "not installed" in (tensorrt_unavailable() or "")


def test_stub_only_tensorrt_is_not_installed(monkeypatch, tmp_path):
    import types

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # what tensorrt-stubs alone give
    with pytest.raises(UsageError, match="TensorRT is not installed"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine")
    assert "only the type stubs" in (tensorrt_unavailable() or "")


def test_tensorrt_needs_polygraphy_too(monkeypatch):
    import importlib.util
    import types

    library = types.ModuleType("tensorrt")
    library.Builder, library.__version__ = object, "10.13.0.35"
    monkeypatch.setitem(sys.modules, "tensorrt", library)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "polygraphy" else real(name, *a))
    assert "polygraphy" in (tensorrt_unavailable() or "")
    with pytest.raises(UsageError, match="Polygraphy is not installed"):
        TensorRTRunner("m.engine").activate()
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert tensorrt_unavailable() is None


def test_import_attndeploy_does_not_import_tensorrt_or_polygraphy():
    import subprocess

    code = ("import sys, attndeploy, attndeploy.tensorrt.deploy, attndeploy.bench.backends, attndeploy.lint; "
            "print('tensorrt' in sys.modules, 'polygraphy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_validate_feeds():
    profile = InputProfile("input", (1, 64, 14, 14), (1, 64, 56, 56), (4, 64, 112, 112))
    specs = [IOSpec("input", True, "float32", (-1, 64, -1, -1), profile), IOSpec("output", False, "float32", ())]
    ok = validate_feeds({"input": torch.zeros(2, 64, 43, 29)}, specs)
    assert ok["input"].flags["C_CONTIGUOUS"] and ok["input"].shape == (2, 64, 43, 29)
    cases = [({"x": np.zeros((1, 64, 56, 56), np.float32)}, "exactly the model's inputs"),
             ({"input": np.zeros((1, 64, 56, 56))}, "dtype"),
             ({"input": np.zeros((1, 32, 56, 56), np.float32)}, "static"),
             ({"input": np.zeros((1, 64, 56), np.float32)}, "rank"),
             ({"input": np.zeros((8, 64, 56, 56), np.float32)}, "optimization profile")]
    for feeds, message in cases:
        with pytest.raises(UsageError, match=message):
            validate_feeds(feeds, specs)


def test_cbam_fp32_engine_matches_eager_and_is_cached(gpu, tmp_path):
    onnx_path, model, spec = export("cbam", tmp_path)
    profile = derive_profile(onnx_path, spec.example_shape)
    timing = tmp_path / "timing.cache"
    engine = tmp_path / "cbam.fp32.engine"
    options = BuildOptions(timing_cache=timing)
    res = build_engine(onnx_path, engine, options, profile=profile)
    assert not res.cached and engine.is_file() and sidecar_path(engine).is_file() and timing.stat().st_size > 0
    meta = json.loads(sidecar_path(engine).read_text())
    assert meta["settings"]["tf32"] is False and meta["settings"]["precision"] == "fp32"
    report = engine_parity(engine, model, spec, FP32_TOL)
    assert report.passed, report.failure_message()
    again = build_engine(onnx_path, engine, options, profile=profile)
    assert again.cached and again.key == res.key
    rebuilt = build_engine(onnx_path, engine, options, profile=profile, rebuild=True)
    assert not rebuilt.cached and engine_parity(engine, model, spec, FP32_TOL).passed


@pytest.mark.parametrize("name", ["cbam", "selfattn"])
def test_fp16_engine_matches_eager(gpu, tmp_path, name):
    import tensorrt as trt

    onnx_path, model, spec = export(name, tmp_path)
    engine = tmp_path / f"{name}.fp16.engine"
    res = build_engine(onnx_path, engine, BuildOptions(precision="fp16"),
                       profile=derive_profile(onnx_path, spec.example_shape))
    strongly_typed = int(trt.__version__.split(".")[0]) >= 11
    assert res.settings.strongly_typed == strongly_typed
    assert bool(res.fp32_layers) != strongly_typed  # weakly typed: layers pinned; strongly typed: graph rewritten
    report = engine_parity(engine, model, spec, FP16_TOL)
    assert report.passed, report.failure_message()
    assert min(o.min_cosine for o in report.outputs) >= TRT_FP16_MIN_COSINE


def qdq_graph(onnx_path: Path, shape: tuple[int, ...]) -> Path:
    """`<stem>.int8.onnx`: TensorRT-flavour Q/DQ (symmetric int8, per-channel weights, float biases)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.feeds = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.feeds, None)

    out = onnx_path.with_name(f"{onnx_path.stem}.int8.onnx")
    quantize_static(str(onnx_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    return out


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_graphs_build_as_they_are(gpu, tmp_path, precision):
    import tensorrt as trt

    onnx_path, model, spec = export("cbam", tmp_path)
    if precision == "fp16":
        reduced = onnx_path.with_name("cbam.fp16.onnx")
        onnx.save(convert_onnx_to_fp16(onnx.load(onnx_path)), reduced)
    else:
        reduced = qdq_graph(onnx_path, spec.example_shape)
    report = engine_for_export(reduced, EngineSettings(), truth_for(model, spec.parity_shapes()),
                               (spec.hw_multiple, spec.min_hw))
    assert report.build.engine_path == tmp_path / f"cbam.{precision}.engine"
    assert report.build.settings.precision == precision and report.build.settings.precision_in_graph
    assert report.build.settings.strongly_typed == (int(trt.__version__.split(".")[0]) >= 10)
    assert report.passed, report.parity.failure_message()
    floor = FP16_MIN_COSINE if precision == "fp16" else INT8_MIN_COSINE
    assert report.parity.budget.min_cosine == floor and report.parity.min_cosine >= floor


def test_runner_refuses_bad_feeds_and_foreign_engines(gpu, tmp_path):
    onnx_path, _, spec = export("cbam", tmp_path)
    engine = tmp_path / "cbam.engine"
    build_engine(onnx_path, engine, profile=derive_profile(onnx_path, spec.example_shape))
    with TensorRTRunner(engine) as runner:
        assert runner.input_names == ["input"] and runner.specs[0].profile is not None
        with pytest.raises(UsageError, match="optimization profile"):
            runner.infer({"input": np.zeros((1, 64, 500, 56), np.float32)})
        with pytest.raises(UsageError, match="dtype"):
            runner.infer({"input": np.zeros((1, 64, 56, 56), np.float64)})
        first = runner.infer({"input": np.ones((1, 64, 56, 56), np.float32)})["output"]
        second = runner.infer({"input": np.zeros((1, 64, 56, 56), np.float32)})["output"]
        assert not np.array_equal(first, second)  # outputs are the caller's, not a reused buffer
        call = runner.bound({"input": np.ones((1, 64, 56, 56), np.float32)})  # checked once
        assert np.array_equal(first, call()["output"])

    stale = tmp_path / "stale.engine"
    shutil.copy(engine, stale)
    meta = json.loads(sidecar_path(engine).read_text())
    meta["platform"]["tensorrt_version"] = "8.6.1"
    sidecar_path(stale).write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="cannot run here"):
        TensorRTRunner(stale).activate()

    truncated = tmp_path / "truncated.engine"
    truncated.write_bytes(engine.read_bytes()[:1000])
    shutil.copy(sidecar_path(engine), sidecar_path(truncated))
    with pytest.raises(UsageError, match="truncated"):
        TensorRTRunner(truncated).activate()

    junk = tmp_path / "junk.engine"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(UsageError, match="metadata sidecar"):
        TensorRTRunner(junk).activate()
    with pytest.raises(UsageError, match="must deserialize"):
        TensorRTRunner(junk, require_metadata=False).activate()


def test_engine_for_export_fp16_with_narrowed_profile(gpu, tmp_path):
    """The engine's precision is its graph's: the fp16 graph builds the fp16 engine (EngineSettings has no fp16)."""
    onnx_path, model, spec = export("selfattn", tmp_path)
    fp16 = onnx_path.with_name("selfattn.fp16.onnx")
    onnx.save(convert_onnx_to_fp16(onnx.load(onnx_path)), fp16)
    report = engine_for_export(fp16, EngineSettings(max=(2, 64, 64, 64)), truth_for(model, spec.parity_shapes()),
                               (spec.hw_multiple, spec.min_hw))
    assert report.build.engine_path == tmp_path / "selfattn.fp16.engine"
    assert report.skipped_shapes == ["3x64x20x71"]  # batch 3 and W 71 lie outside the narrowed profile
    assert report.passed, report.parity.failure_message()
    assert report.to_dict()["profile"]["input"]["max"] == [2, 64, 64, 64]


def test_parser_errors_name_node_and_module(gpu, tmp_path):
    shape = numpy_helper.from_array(np.array([6, 6], np.int64), "image_shape")
    block = numpy_helper.from_array(np.array([3, 3], np.int64), "block_shape")
    node = helper.make_node("Col2Im", ["x", "image_shape", "block_shape"], ["y"], name="/head/fold/Col2Im")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 36, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [shape, block])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path = tmp_path / "fold.onnx"
    onnx.save(model, path)
    with pytest.raises(EngineBuildFailed) as err:
        build_engine(path, tmp_path / "fold.engine")
    assert "/head/fold/Col2Im" in str(err.value) and "head.fold" in str(err.value)
    assert not (tmp_path / "fold.engine").exists()
