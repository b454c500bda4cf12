"""Detection power: bugs planted in the exported graph alone, judged against the same truth as the clean graph.

The issue's claims, asserted per model (`attndeploy power` prints the README's table): a 1e-4
relative error in one output channel is caught on a registry module, a torchvision
classifier and a YOLO detector, 1e-3 everywhere (a host network too), and the clean export
always passes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torchvision

import attndeploy
from attndeploy.detection_power import detection_power, plant_channel_scale
from attndeploy.pipeline.stages.export import runnable
from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner
from tests.detector_models import yolo, yolo_env  # noqa: F401  (fixture)


def power(res, sizes=(1e-2, 1e-3, 1e-4)):
    assert res.passed, res.parity.failure_message()  # the clean export passes
    graph = runnable(onnx.load(str(res.onnx_path)))
    return detection_power(graph, res.truth, res.parity.budget, sizes)


def test_the_planted_bug_scales_one_channel_of_the_graph_only(tmp_path):
    res = attndeploy.export("se", None, tmp_path / "se.onnx", opset=17)
    proto = onnx.load(str(res.onnx_path))
    planted = plant_channel_scale(proto, 0, 3, 0.5, 64, 4)
    x = res.truth.probes[0].x
    with OnnxRuntimeRunner(proto.SerializeToString()) as clean, OnnxRuntimeRunner(planted.SerializeToString()) as bad:
        a, b = clean.infer({"input": x})["output"], bad.infer({"input": x})["output"]
    np.testing.assert_allclose(b[:, 3], 1.5 * a[:, 3], rtol=1e-6)
    np.testing.assert_array_equal(np.delete(b, 3, axis=1), np.delete(a, 3, axis=1))
    assert [o.name for o in planted.graph.output] == ["output"]


def test_a_registry_module_catches_1e_4(tmp_path):
    report = power(attndeploy.export("cbam", None, tmp_path / "cbam.onnx", opset=17))
    assert report.clean_passed and report.smallest is not None and report.smallest <= 1e-4, report.to_dict()


def test_a_torchvision_classifier_catches_1e_4(tmp_path):
    torch.manual_seed(0)  # torchvision's own init draws from the global generator: one fixed draw
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    report = power(attndeploy.export(model, (1, 3, 96, 96), tmp_path / "m.onnx", opset=17))
    assert report.smallest is not None and report.smallest <= 1e-4, report.to_dict()


def test_a_host_network_catches_1e_3(tmp_path):
    from attndeploy.nets.host import build_host

    model = attndeploy.randomize_(build_host("cbam")).eval()
    report = power(attndeploy.export(model, (1, 3, 64, 64), tmp_path / "h.onnx", opset=17))
    assert report.smallest is not None and report.smallest <= 1e-3, report.to_dict()


@pytest.mark.detector
def test_a_yolo_detector_catches_1e_4(yolo_env, tmp_path):  # noqa: F811
    res = attndeploy.export(yolo("yolov8n").model, None, tmp_path / "y.onnx", imgsz=320)
    report = power(res)
    assert report.output == "output0" and report.smallest is not None and report.smallest <= 1e-4, report.to_dict()


def test_power_command_prints_one_json_object(cli, capsys):
    import json

    assert cli(["power", "eca", "--sizes", "1e-3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["rows"][0]["detected"] == {"0.001": True}
    assert cli(["power", "eca", "--sizes", "2"]) == 2
