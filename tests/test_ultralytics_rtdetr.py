"""RT-DETR from a model YAML: the YAML's family (its head) picks ultralytics' class that builds it, so the CLI and
recipes take `rtdetr-l.yaml` as the API takes `RTDETR(...)`. A small RT-DETR (`tiny_detr_yaml`: rtdetr-l with
fewer, narrower layers, a 2-layer decoder, 100 queries) keeps the suite fast; rtdetr-l itself is measured in
the report, not here (about 5 minutes on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from attndeploy.errors import UsageError
from tests.detector_models import tiny_detr_yaml, yolo_env  # noqa: F401  (fixture)

SMALL = 320


def test_the_yaml_head_picks_the_class(yolo_env: Path, tmp_path: Path) -> None:  # noqa: F811
    from attndeploy.adapters.ultralytics_sources import build_from_yaml, family_class, head_module

    path = tiny_detr_yaml(tmp_path)                       # named without "rtdetr": the head decides
    assert head_module(path) == "RTDETRDecoder" and family_class(path).__name__ == "RTDETR"
    assert type(build_from_yaml(path)).__name__ == "RTDETRDetectionModel"
    assert head_module(Path("rtdetr-l.yaml")) == "RTDETRDecoder"
    assert family_class(Path("yolov8n.yaml")).__name__ == "YOLO" and head_module(Path("yolov8n.yaml")) == "Detect"
    broken = tmp_path / "broken.yaml"
    broken.write_text("backbone: [[-1, 1, Conv, [16, 3, 2]]]\n")
    assert head_module(broken) == ""
    with pytest.raises(UsageError, match="a model YAML needs its layer lists.*no 'head' in broken.yaml"):
        build_from_yaml(broken)


def test_rtdetr_has_no_nms_to_embed(yolo_env: Path, tmp_path: Path) -> None:  # noqa: F811
    from attndeploy.adapters import adapter_for
    from attndeploy.adapters.ultralytics_sources import build_from_yaml
    from attndeploy.settings import ExportSettings

    model = build_from_yaml(tiny_detr_yaml(tmp_path))
    with pytest.raises(UsageError, match="RT-DETR is NMS-free"):
        adapter_for(model).prepare(model, ExportSettings.create(model, None, None, nms=True))
    prepared = adapter_for(model).prepare(model, ExportSettings.create(model, None, None, nms=False, imgsz=SMALL))
    assert prepared.postprocess["mode"] == "free" and prepared.row_outputs == ("output0",)
    assert any("RT-DETR is NMS-free" in note for note in prepared.notes)


@pytest.mark.detector
def test_rtdetr_yaml_through_the_cli(yolo_env: Path, tmp_path: Path, cli, capsys) -> None:  # noqa: F811
    path = tiny_detr_yaml(tmp_path)
    code = cli(["export", str(path), "--imgsz", str(SMALL), "--out", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    report = json.loads(captured.out)
    assert report["passed"] and report["name"] == "tiny-detr"
    task = report["tasks"]["fp32"]
    assert task["status"] in ("passed", "undecidable") and task["layout"] == "rows", task["message"]
    graph = onnx.load(report["onnx"])
    (out,) = graph.graph.output
    assert [d.dim_value for d in out.type.tensor_type.shape.dim][1:] == [100, 6]   # 100 queries: cx, cy, w, h, score, cls
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["head"] == "RTDETRDecoder" and not [k for k in meta if k.startswith("onnxsim.")]
