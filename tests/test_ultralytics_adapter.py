"""The ultralytics adapter, its sources (YAML + custom modules, trusted checkpoints), lint wording and task check.

Offline and away from $HOME: `yolo_env` points ultralytics' settings at a temp folder
before it is imported; models are built from YAML with random weights.
"""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.detector_models import yolo_env  # noqa: F401  (fixture)

pytestmark = pytest.mark.detector
SMALL = 320


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("yolo")


@pytest.fixture(scope="module")
def v8n(yolo_env: Path, folder: Path) -> nn.Module:  # noqa: F811
    from tests.detector_models import build

    return build("yolov8n-cbam", folder)


def _settings(model: nn.Module, **options: object):
    from attndeploy.settings import ExportSettings

    return ExportSettings.create(model, None, None, **options)


def test_adapter_prepares_like_ultralytics_exporter(v8n: nn.Module) -> None:
    from ultralytics.nn.modules.head import Detect

    from attndeploy.adapters import adapter_for

    user = copy.deepcopy(v8n)
    prepared = adapter_for(user).prepare(user, _settings(user, imgsz=(SMALL, 2 * SMALL), batch=2))
    head = prepared.model.model[-1]
    assert prepared.family == "ultralytics" and prepared.task == "detect" and prepared.name == "yolov8n-cbam"
    assert isinstance(head, Detect) and head.export and head.dynamic and head.format == "onnx"
    assert not any(hasattr(m, "bn") for m in prepared.model.modules() if type(m).__name__ in ("Conv", "DWConv"))
    assert prepared.input_name == "images" and prepared.output_names == ["output0"]
    assert prepared.output_axes == {"output0": (0, 2)}            # batch and anchors; never the 4 + nc axis
    assert prepared.hw_multiple == 32 and prepared.example == (2, 3, SMALL, 2 * SMALL)
    notes = " | ".join(prepared.notes)
    assert "fused" in notes and "Detect head model.23: export mode, dynamic anchors" in notes
    meta = prepared.metadata
    assert ast.literal_eval(meta["names"]) == v8n.names and v8n.names[0] == "thing0"
    assert meta["stride"] == "32" and ast.literal_eval(meta["imgsz"]) == [SMALL, 2 * SMALL] and meta["task"] == "detect"
    assert meta["batch"] == "2" and "attndeploy" in meta and "description" in meta
    assert ast.literal_eval(meta["args"])["dynamic"] is True
    assert not v8n.model[-1].export and any(isinstance(m, nn.BatchNorm2d) for m in v8n.modules())  # user's model


def test_adapter_is_chosen_by_type_and_unwraps_yolo(v8n: nn.Module) -> None:
    from ultralytics import YOLO
    from ultralytics.nn.modules.conv import CBAM

    from attndeploy.adapters import adapter_for
    from attndeploy.adapters.ultralytics import unwrap

    wrapper = YOLO("yolov8n.yaml", verbose=False)
    assert adapter_for(wrapper).family == "ultralytics" and adapter_for(v8n).family == "ultralytics"
    assert adapter_for(CBAM(16)).family == "torch" and adapter_for(nn.Conv2d(3, 3, 1)).family == "torch"
    inner, notes = unwrap(wrapper)
    assert inner is wrapper.model and "unwrapped the YOLO(...) wrapper" in notes[0]


def test_importing_attndeploy_does_not_import_ultralytics() -> None:
    code = "import sys, attndeploy, attndeploy.adapters; assert 'ultralytics' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_custom_modules_are_visible_only_while_building(yolo_env: Path, folder: Path) -> None:  # noqa: F811
    from ultralytics.nn import tasks

    from attndeploy.adapters.ultralytics_sources import build_from_yaml
    from attndeploy.errors import UsageError
    from tests.detector_models import custom_modules_file, model_yaml

    path = model_yaml("yolov8n-coordatt", folder)
    model = build_from_yaml(path, custom_modules_file(folder))
    assert type(model.model[10]).__name__ == "CoordAtt" and not hasattr(tasks, "CoordAtt")
    assert not hasattr(tasks, "CBAM")
    with pytest.raises(UsageError, match="names a module ultralytics' YAML parser does not know.*--custom-modules"):
        build_from_yaml(path)
    assert not hasattr(tasks, "CoordAtt")


def test_checkpoint_without_trust_is_refused_before_loading(tmp_path: Path, v8n: nn.Module, capsys) -> None:
    from attndeploy.cli.main import main

    marker = tmp_path / "ran"
    checkpoint = tmp_path / "best.pt"
    torch.save({"model": v8n, "payload": _RunsOnLoad(str(marker))}, checkpoint)
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--trust-checkpoint" in err and "runs code" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_trusted_checkpoint_loads_with_names_and_name(tmp_path: Path, v8n: nn.Module) -> None:
    from attndeploy.adapters.ultralytics import model_name
    from attndeploy.adapters.ultralytics_sources import load_checkpoint

    checkpoint = tmp_path / "best.pt"
    torch.save({"model": v8n, "train_args": {"imgsz": 640}}, checkpoint)
    model = load_checkpoint(checkpoint, trust=True)
    assert type(model).__name__ == "DetectionModel" and model.names == v8n.names and model_name(model) == "best"
    x = torch.rand(1, 3, SMALL, SMALL)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x)[0], v8n.eval()(x)[0])


class _RunsOnLoad:
    """A pickle payload that creates a file when unpickled: proof that nothing was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


class _Deployed(nn.Module):
    """A user's deploy wrapper: the head put in export mode by hand, anchors left static (dynamic=False)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        head = model.model[-1]
        head.export, head.format, head.dynamic = True, "onnx", False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def test_baked_anchors_finding_says_keep_anchors_dynamic(v8n: nn.Module) -> None:
    from attndeploy.adapters.ultralytics_lint import refine_findings
    from attndeploy.lint.torch_lint import lint_model

    model = _Deployed(copy.deepcopy(v8n)).eval()
    x = torch.rand(1, 3, SMALL, SMALL)
    with torch.no_grad():
        model(x)  # the pipeline's eager run: the head caches its anchors
    raw = lint_model(model, x)
    assert any("anchors" in f.call and "nn.Parameter" in f.message() for f in raw)  # the wrong fix, before
    findings = [f for f in refine_findings(model, raw) if f.path == "model.model.23"]
    assert [f.hazard for f in findings] == ["baked anchors"]  # the plain attributes and the branch, as one
    message = findings[0].message()
    assert "Detect head model.model.23" in message and "keep anchors dynamic" in message
    assert "`model.model.23.dynamic = True`" in message and "nn.Parameter" not in message


def test_baked_anchor_export_is_caught(tmp_path: Path, v8n: nn.Module) -> None:
    import attndeploy

    model = _Deployed(copy.deepcopy(v8n))
    shapes = [(1, 3, SMALL, SMALL), (2, 3, 256, SMALL)]
    res = attndeploy.export(model, (1, 3, SMALL, SMALL), tmp_path / "deployed.onnx", parity_shapes=shapes)
    assert not res.passed and res.onnx_path.name == "deployed.rejected.onnx"
    baked = [f for f in res.lint if f["hazard"] == "baked anchors"]  # needs the lint stage to call refine_findings
    assert baked and "keep anchors dynamic" in baked[0]["hint"] and baked[0]["path"] == "model.model.23"


def test_lint_of_a_yaml_lists_the_exports_findings_and_int8_calibrates_on_the_shipped_images(
        tmp_path: Path, yolo_env: Path, cli, capsys) -> None:  # noqa: F811
    """`attndeploy lint yolov8n.yaml` runs the pipeline up to its lint stage (the head prepared as the export prepares
    it: no advice to make Detect.anchors a Parameter); `export yolov8n.yaml --precision int8` without --calib
    calibrates on the images the family ships, says so, and is judged (exit 0 or 1, never 2)."""
    import json

    assert cli(["lint", "yolov8n.yaml", "--imgsz", "128", "--json"]) == 0
    linted = json.loads(capsys.readouterr().out)["findings"]
    code = cli(["export", "yolov8n.yaml", "--imgsz", "128", "--precision", "int8", "--no-bundle", "--json",
                "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err[-2000:]
    assert json.loads(captured.out)["lint"] == linted and linted  # arange without device=, in the box decoding
    assert not [f for f in linted if f["hazard"] == "plain tensor attribute" or "Parameter" in f["hint"]]
    assert "calibrating on 2 sample(s) from the 2 image(s) the ultralytics family ships" in captured.err
    assert "real images from your data calibrate better: --calib DIR" in captured.err


def test_detection_comparison_and_threshold() -> None:
    from attndeploy.adapters.ultralytics_detections import Layout
    from attndeploy.adapters.ultralytics_match import compare_detections, matched_pairs
    from attndeploy.adapters.ultralytics_threshold import choose_threshold

    a = torch.tensor([[10.0, 10.0, 50.0, 60.0, 0.9, 3.0], [100.0, 100.0, 150.0, 180.0, 0.5, 7.0]])
    assert compare_detections(a, a.flip(0)) == (None, 1.0)
    moved = a.clone()
    moved[1, :4] += 2.0
    problem, _ = compare_detections(a, moved)
    assert problem is not None and "IoU" in problem and "< 0.99" in problem
    swapped = a.clone()
    swapped[0, 5] = 4.0
    assert compare_detections(a, swapped)[0] == "the classes differ"
    assert compare_detections(a, a[:1])[0] == "2 eager detections vs 1 in the graph"
    rescored = a.clone()
    rescored[1, 4] *= 1.01
    assert "score" in (compare_detections(a, rescored)[0] or "")                  # same box, score 1% off
    assert matched_pairs(a, moved, 0.5) == 2 and matched_pairs(a, swapped, 0.5) == 1 and matched_pairs(a, a[:0], 0.5) == 0
    assert matched_pairs(a, torch.cat([a[:1], a[:1]]), 0.5) == 1     # a graph box matches one eager box only
    pred = torch.zeros((1, 84, 400))
    pred[0, 0] = torch.arange(400) * 50.0                     # boxes far apart: no NMS interplay
    pred[0, 2:4] = 10.0
    pred[0, 4] = 0.0039
    pred[0, 4, :30] = torch.linspace(0.02, 0.01, 30)
    pred[0, 4, 30:60] = torch.linspace(0.005, 0.004, 30)      # the widest relative gap: 0.01 -> 0.005
    threshold = choose_threshold(pred, Layout(nc=80, imgsz=(640, 640)))
    assert threshold.conf is not None and 0.005 < threshold.conf < 0.01 and "relative gap" in threshold.why


def test_pin_static_output_dims_fixes_the_class_axis() -> None:
    import onnx
    from onnx import TensorProto, helper

    from attndeploy.exporting.output_dims import pin_static_output_dims

    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", "Concatoutput0_dim_1", "anchors"])
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    proto = helper.make_model(helper.make_graph([], "g", [inp], [out]))
    notes = pin_static_output_dims(proto, {"output0": (0, 2)}, {"output0": (1, 84, 2100)})
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 84, "anchors"] and "dim 1 'Concatoutput0_dim_1' -> 84" in notes[0]
    assert pin_static_output_dims(proto, {"output0": (0, 2)}, {"output0": (1, 84, 2100)}) == []
    assert isinstance(proto, onnx.ModelProto)
