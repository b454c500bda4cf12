"""YOLO detectors with attention blocks, end to end: Python API on the raw model, CLI on a YAML or a factory.

Every export is checked at 640x640, 480x640, 320x320 and batch 2 (image-like inputs) and
at the detection level (bus.jpg, zidane.jpg after NMS); the graph keeps ultralytics' names,
dynamic axes and metadata, so `YOLO("<out>.onnx")` predicts with the model's class names.
Opset 17 (TorchScript) through the API for every model. Opset 18 (dynamo) for every block,
through the CLI: a factory holding the DCN C2f, CoordAtt, CBAM and YOLO11's C2PSA at once
(`yolov8n-dcn-coordatt-cbam-c2psa`: one dynamo trace for the four; a failure names the
module) and a YAML (`yolo12n`: C3k2 and A2C2f area attention); not the plain yolov8n (the
factory is yolov8n with blocks) nor yolov8n-acmix (40 s of dynamo tracing; ACmix through
dynamo is the README grid's, at opsets 18 to 20). The CLI is not repeated per model: it hands
the same settings to the same pipeline (`tests/test_options.py` holds the CLI and the API to
one declaration).

Tolerances: the pipeline's own, scaled by each model's fp32 noise at every parity input
(`attndeploy.parity.noise`); none is passed here.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
from torch import nn

from tests.detector_models import KINDS, yolo_env  # noqa: F401  (fixture)

pytestmark = pytest.mark.detector
SHAPES = [(1, 3, 640, 640), (1, 3, 480, 640), (1, 3, 320, 320), (2, 3, 320, 320)]
SHAPES_ARG = ",".join("x".join(map(str, s)) for s in SHAPES)
EXAMPLE = 320
BUILT_IN = ("yolov8n", "yolo11n", "yolo12n")   # YAMLs ultralytics ships: the CLI takes their names
CLI_OPSET18 = ("yolov8n-dcn-coordatt-cbam-c2psa", "yolo12n")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("detectors")


@pytest.fixture(scope="module")
def models(yolo_env: Path, folder: Path) -> Callable[[str], nn.Module]:  # noqa: F811
    from tests.detector_models import build

    cache: dict[str, nn.Module] = {}

    def get(kind: str) -> nn.Module:
        if kind not in cache:
            cache[kind] = build(kind, folder)
        return cache[kind]

    return get


@pytest.fixture(scope="module")
def exported(models: Callable[[str], nn.Module], folder: Path) -> Callable[[str, int], Any]:
    import attndeploy

    cache: dict[tuple[str, int], Any] = {}

    def get(kind: str, opset: int) -> Any:
        if (kind, opset) not in cache:
            out = folder / f"api{opset}" / f"{kind}.onnx"
            cache[kind, opset] = attndeploy.export(models(kind), None, out, opset=opset, imgsz=EXAMPLE,
                                                   parity_shapes=SHAPES, bundle=False)  # bundles: tests/bundles.py
        return cache[kind, opset]

    return get


def _dims(value: onnx.ValueInfoProto) -> list[Any]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def assert_detector_graph(path: Path, opset: int, names: dict[int, str]) -> None:
    """ultralytics' interface: `images` (N, 3, H, W) -> `output0` (N, 84, A), dynamic but for 84; its metadata."""
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == opset
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "images" and out.name == "output0"
    n, c, h, w = _dims(inp)
    assert c == 3 and all(isinstance(d, str) for d in (n, h, w))
    batch, channels, anchors = _dims(out)
    assert channels == 84 and isinstance(batch, str) and isinstance(anchors, str)
    meta = {p.key: p.value for p in model.metadata_props}
    assert ast.literal_eval(meta["names"]) == names and meta["stride"] == "32" and meta["task"] == "detect"


def assert_passed(report: dict[str, Any]) -> None:
    assert report["passed"], report["parity"]
    assert report["parity"]["shapes"] == [SHAPES_ARG.split(",")[i] for i in range(len(SHAPES))]
    task = report["tasks"]["fp32"]
    assert task["passed"] and task["name"] == "detections", task["message"]


def _api(kind: str, opset: int, exported: Callable[[str, int], Any], models: Callable[[str], nn.Module]) -> None:
    res = exported(kind, opset)
    assert_passed(res.to_dict())
    assert res.onnx_path.name == f"{kind}.onnx"
    assert_detector_graph(res.onnx_path, opset, models(kind).names)


@pytest.mark.parametrize("kind", KINDS)
def test_api_export_opset17(kind: str, exported, models) -> None:
    _api(kind, 17, exported, models)


def _cli(kind: str, opset: int, out: Path, cli, capsys) -> dict[str, Any]:
    source = [f"{kind}.yaml"] if kind in BUILT_IN else ["tests.detector_models:yolo", "--kwargs",
                                                       json.dumps({"kind": kind, "folder": str(out)})]
    args = [*source, "--opset", str(opset), "--imgsz", str(EXAMPLE), "--parity-shapes", SHAPES_ARG,
            "--out", str(out), "--no-bundle", "--json"]
    out.mkdir(parents=True, exist_ok=True)
    code = cli(["export", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return json.loads(captured.out)


@pytest.mark.parametrize("kind", CLI_OPSET18)
def test_cli_export_opset18(kind: str, tmp_path: Path, yolo_env: Path, cli, capsys) -> None:  # noqa: F811
    report = _cli(kind, 18, tmp_path, cli, capsys)
    assert_passed(report)
    assert report["opset"] == 18 and Path(report["onnx"]).is_file()
    if kind.startswith("yolov8n-"):  # DCN (GridSample at 18), CBAM's channel max, CoordAtt's pools, C2PSA's softmax
        counts = report["node_counts"]
        assert counts.get("GridSample") == 1 and counts.get("ReduceMax") == 1 and counts.get("Softmax") == 2
        assert report["rewrites"]["counts"].get("adaptive_avg_pool2d") == 2


def test_cli_yaml_with_custom_modules_is_named_after_it(tmp_path: Path, yolo_env: Path,  # noqa: F811
                                                        cli, capsys) -> None:
    from tests.detector_models import custom_modules_file, model_yaml

    yaml_path = model_yaml("yolov8n-coordatt", tmp_path)
    args = ["export", yaml_path, "--custom-modules", str(custom_modules_file(tmp_path)), "--imgsz", str(EXAMPLE),
            "--parity-shapes", SHAPES_ARG, "--json"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        code = cli(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]  # needs prepare to pass custom_modules to resolve_source
    report = json.loads(captured.out)
    assert_passed(report)
    assert report["name"] == "yolov8n-coordatt"
    assert Path(report["onnx"]) == Path("models/yolov8n-coordatt/yolov8n-coordatt.onnx")
    assert (tmp_path / report["onnx"]).is_file()


def test_predict_reads_the_class_names(exported, models) -> None:
    from ultralytics import YOLO
    from ultralytics.utils import ASSETS

    res = exported("yolov8n-cbam", 17)
    results = YOLO(str(res.onnx_path), task="detect").predict(str(ASSETS / "bus.jpg"), imgsz=EXAMPLE, conf=0.001,
                                                               verbose=False)
    assert results[0].names == models("yolov8n-cbam").names and results[0].names[0] == "thing0"
    assert results[0].boxes is not None and results[0].orig_shape == (1080, 810)
