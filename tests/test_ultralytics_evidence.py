"""The evidence on a whole detector: a correct YOLOv8n passes at the pipeline's noise-scaled default, and a real
bug injected into one channel of one conv of its head fails and is localised at that conv."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

import attndeploy
from tests.detector_models import build, yolo_env  # noqa: F401  (fixture)
from tests.evidence_models import DriftsOneChannel

pytestmark = pytest.mark.detector


@pytest.fixture(scope="module")
def v8n(yolo_env: Path, tmp_path_factory: pytest.TempPathFactory) -> nn.Module:  # noqa: F811
    return build("yolov8n", tmp_path_factory.mktemp("v8n"))


def test_a_correct_detector_passes_at_the_default_tolerance(v8n: nn.Module, tmp_path: Path) -> None:
    res = attndeploy.export(v8n, None, tmp_path / "ok.onnx", opset=17, imgsz=320)
    assert res.passed, res.parity.failure_message()
    assert res.evidence["shape_rule"].startswith("H, W multiples of 32")
    assert res.evidence["noise"]["method"] == "float64" and res.parity.outputs[0].limit is not None


def test_a_one_channel_bug_in_the_box_head_fails_and_is_localised(v8n: nn.Module, tmp_path: Path) -> None:
    import copy

    model = copy.deepcopy(v8n)
    head = model.model[22]
    head.cv2[0][2] = DriftsOneChannel(head.cv2[0][2], channel=5, relative=1e-3)  # x (1 + 1e-3), exported graph only
    res = attndeploy.export(model, None, tmp_path / "bug.onnx", opset=17, imgsz=320)
    assert not res.passed and res.onnx_path.name == "bug.rejected.onnx"
    assert "differs at" in res.parity.failure_message()
    assert res.localisation is not None and res.localisation.path == "model.22.cv2.0.2"
