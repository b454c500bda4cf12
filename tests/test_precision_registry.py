"""Every registry module at fp16 and int8 (calibrated on its own kind of input) meets the budgets (issue 13).

fp16: every output finite and cosine >= 0.9999 in plain onnxruntime and in strict-fp16
evaluation; int8 (TensorRT's Q/DQ flavour): cosine >= 0.99, every zero point 0; every written
graph passes `onnx.checker`. The measured figures are printed (`-s`) for the README.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import attndeploy
from attndeploy.defaults import FP16_MIN_COSINE, INT8_MIN_COSINE
from attndeploy.pipeline import run_pipeline
from attndeploy.registry import get_spec, list_modules
from attndeploy.settings import ExportSettings
from tests.test_precision import zero_points

CALIBRATION_SAMPLES = 16


def _checked(res: attndeploy.ExportResult) -> None:
    for path in res.files.values():
        onnx.checker.check_model(onnx.load(path))


@pytest.mark.slow
@pytest.mark.parametrize("name", list_modules())
def test_registry_module_at_fp16_and_int8(name, tmp_path):
    """One pipeline run per module, both graphs from its truth (as `selftest` and `bench` run them; the
    `attndeploy.export(..., precision=...)` path itself: tests/test_precision.py)."""
    shape = get_spec(name).example_shape
    calibration = np.random.default_rng(13).standard_normal((CALIBRATION_SAMPLES, *shape[1:])).astype(np.float32)
    settings = ExportSettings.create(name, None, tmp_path / f"{name}.onnx", precision="int8", calibration=calibration)
    res = run_pipeline(settings, also=("fp16",))
    assert res.passed, res.parity.failure_message()
    fp16, int8 = res.parities[("fp16", "onnxruntime-cpu")], res.parities[("int8", "onnxruntime-cpu")]
    assert fp16.passed, fp16.failure_message()
    strict = fp16.strict
    assert strict is not None and strict.passed
    assert min(fp16.min_cosine, strict.min_cosine) >= FP16_MIN_COSINE
    assert int8.passed, int8.failure_message()
    assert int8.min_cosine >= INT8_MIN_COSINE
    assert all(m.finite for m in int8.metrics.values())
    assert set(res.files) >= {"fp16", "int8"}
    graph = onnx.load(res.files["int8"])
    assert all(np.all(z == 0) for z in zero_points(graph))
    _checked(res)
    print(f"\n{name}: fp16 cosine {fp16.min_cosine:.7f} strict {strict.min_cosine:.7f} "
          f"int8 cosine {int8.min_cosine:.6f} "
          f"(SQNR {min(m.sqnr_db for m in int8.metrics.values()):.1f} dB)")
