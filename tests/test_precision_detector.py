"""A YOLOv8n + CBAM at INT8, calibrated on image-like data: the int8 budget, the sensitivity report, the detections.

Built from YAML offline (`tests.detector_models`: random weights that make the outputs
depend on the input). The precision stage starts from the fp32 graph verified at the
pipeline's default (noise-scaled) tolerance; the detection check on the int8 graph uses the
reduced-precision rule (class-matched boxes at IoU >= 0.5, >= 90% of each side's boxes found in the
other's at the threshold moved by int8's 15% score slack) and reports what INT8 did to the scores (the
mean and worst relative shift, the boxes kept per class and per stride); the int8 search leaves
sensitive modules float until that check passes, not only until the cosine target is met.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import attndeploy
from attndeploy.defaults import INT8_MIN_COSINE
from attndeploy.lint import lint_onnx
from attndeploy.precision.sensitivity import MAX_EXCLUDED
from tests.detector_models import build, yolo_env  # noqa: F401  (fixture)
from tests.test_precision import zero_points

CALIBRATION = 8


@pytest.mark.slow
def test_yolov8n_cbam_int8(yolo_env, tmp_path):  # noqa: F811
    model = build("yolov8n-cbam", Path(tmp_path))  # at 320 (the search below runs at 640)
    images = np.random.default_rng(21).random((CALIBRATION, 3, 320, 320), dtype=np.float32)
    res = attndeploy.export(model, (1, 3, 320, 320), tmp_path / "y.onnx", precision="int8", calibration=images)
    assert res.parities[("fp32", "onnxruntime-cpu")].passed
    report = res.parities[("int8", "onnxruntime-cpu")]
    detections = res.tasks["int8"]
    assert detections.passed and min(detections.details["recall"], detections.details["precision"]) >= 0.9, \
        detections.message
    shift, kept = detections.details["score_shift"], detections.details["kept_by_class"]   # what INT8 did to scores
    assert shift["matched"] > 0 and abs(shift["mean"]) <= abs(shift["worst"]) and "score shift mean" in detections.message
    assert kept and all(0 <= k <= t for k, t in kept.values()) and detections.details["kept_by_stride"]
    assert report.passed and report.min_cosine >= INT8_MIN_COSINE, report.failure_message()
    search = report.to_dict()["int8_search"]
    # the fully quantized graph passes: it is kept, with no sensitivity ranking (that runs only on a miss, below)
    assert search["excluded"] == [] and search["sensitivity"] == [] and search["full_cosine"] >= INT8_MIN_COSINE
    assert report.reduced_fraction == 1.0
    assert report.worst_module and report.worst_module["path"].startswith("model.")
    graph = onnx.load(res.files["int8"])
    onnx.checker.check_model(graph)
    assert all(np.all(z == 0) for z in zero_points(graph))
    assert not [f for f in lint_onnx(graph, "10") if f.severity == "error"]
    assert res.passed and res.onnx_path.name == "y.int8.onnx"


@pytest.mark.slow
def test_int8_search_leaves_modules_float_until_the_detections_agree(yolo_env, tmp_path, monkeypatch):  # noqa: F811
    """Every box must agree (a stricter rule than the default 90%, which the fully quantized graph misses here): the
    search goes on past the cosine target, one sensitive module at a time, until the detection check passes."""
    from attndeploy.adapters import ultralytics_task

    monkeypatch.setattr(ultralytics_task, "REDUCED_AGREEMENT", 1.0)
    model = build("yolov8n-cbam", Path(tmp_path))
    images = np.random.default_rng(21).random((CALIBRATION, 3, 640, 640), dtype=np.float32)
    res = attndeploy.export(model, (1, 3, 640, 640), tmp_path / "y.onnx", precision="int8", calibration=images,
                            bundle=False)  # the search alone; the test above writes the int8 bundle
    search = res.parities[("int8", "onnxruntime-cpu")].to_dict()["int8_search"]
    failed = [r for r in search["rounds"] if r.startswith("cosine target met, task check failed: ")]
    assert search["full_cosine"] >= search["target"] and failed and search["excluded"]   # the cosine alone: done
    assert len(failed) == len(search["excluded"])      # each module left float because the detections disagreed
    assert len(search["excluded"]) < MAX_EXCLUDED and res.tasks["int8"].passed and search["task_passed"], \
        res.tasks["int8"].message
