"""Export time against ultralytics' own exporter, side by side in one process (`bench.export_speed`).

The target (issue 12): a verified export of a whole detector in at most 2x the time of
`YOLO(...).export(format="onnx", dynamic=True, simplify=True)`. The measured figures are
printed (`-s`) for the README's speed table. attndeploy runs its default checks (shape rule,
noise, determinism, lint, parity over its default sweep with the noise-scaled tolerance,
detections).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detector_models import yolo_env  # noqa: F401  (fixture)

pytestmark = [pytest.mark.detector, pytest.mark.slow]
MAX_RATIO = 2.0


def test_export_time_is_within_2x_of_ultralytics(tmp_path: Path, yolo_env: Path) -> None:  # noqa: F811
    pytest.importorskip("onnxslim", reason="ultralytics' simplify=True needs onnxslim (the dev extra)")
    from attndeploy.bench.export_speed import compare_export_speed

    # the fastest of 5 interleaved rounds each: CI runs this beside another test worker, whose load a short
    # measurement catches (2 rounds gave 2.15 in one CI run, 1.70 alone)
    report = compare_export_speed("yolov8n.yaml", tmp_path, imgsz=640, opset=17, rounds=5)
    print("\n".join(report.lines()))
    assert report.passed and (tmp_path / "attndeploy" / "yolov8n.onnx").is_file()
    assert (tmp_path / "ultralytics" / "yolov8n.onnx").is_file()
    assert report.ratio <= MAX_RATIO, report.to_dict()
