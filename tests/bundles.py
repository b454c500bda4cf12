"""Device bundles made once per test session by `attndeploy export` (the main venv, with torch), for `verify` tests.

Fixtures (session-scoped; import them into a test module to use them):
- `cbam_bundle`: `attndeploy export cbam` (fp32);
- `cbam_fp16_bundle`: `attndeploy export cbam --precision fp16`;
- `yolo_bundle`: `attndeploy export yolov8n-cbam.yaml --custom-modules blocks.py --imgsz 320` (ultralytics' CBAM
  after SPPF, random weights, offline).

`nudged_copy(bundle, folder, node)` copies a bundle and scales output channel 0 of the named
Conv's weight by 1.01 in its final graph: a planted bug only in the graph, eager untouched.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.detector_models import custom_modules_file, model_yaml, yolo_env  # noqa: F401 (fixture)

# The Conv each planted bug goes into, and the PyTorch module verify must name for it.
NUDGES = {"cbam": ("/spatial/conv/Conv", "SpatialGate.spatial.conv"),
          "yolov8n-cbam": ("/model.10/spatial_attention/cv1/Conv", "model.10.spatial_attention.cv1")}


def export_bundle(args: list[str], folder: Path) -> Path:
    """`attndeploy export ARGS --out FOLDER` in this process; the folder (exit 0 required)."""
    from attndeploy.cli.main import main

    code = main(["export", *args, "--out", str(folder)])
    assert code == 0, f"attndeploy export {' '.join(args)} exited {code}"
    assert (folder / "bundle.json").is_file()
    return folder


@pytest.fixture(scope="session")
def cbam_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(["cbam"], tmp_path_factory.mktemp("bundles") / "cbam")


@pytest.fixture(scope="session")
def cbam_fp16_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(["cbam", "--precision", "fp16"], tmp_path_factory.mktemp("bundles") / "cbam-fp16")


@pytest.fixture(scope="session")
def yolo_bundle(tmp_path_factory: pytest.TempPathFactory, yolo_env: Path) -> Iterator[Path]:  # noqa: F811
    where = tmp_path_factory.mktemp("yolo-yaml")
    yaml = model_yaml("yolov8n-cbam", where)
    blocks = custom_modules_file(where)
    yield export_bundle([yaml, "--custom-modules", str(blocks), "--imgsz", "320"],
                        tmp_path_factory.mktemp("bundles") / "yolov8n-cbam")


def nudged_copy(bundle: Path, folder: Path, node: str, factor: float = 1.01) -> Path:
    """A copy of `bundle` in `folder` whose final graph has output channel 0 of Conv `node`'s weight times `factor`."""
    shutil.copytree(bundle, folder)
    graph = onnx.load(str(folder / _final(folder)))
    weights = {t.name: t for t in graph.graph.initializer}
    conv = next(n for n in graph.graph.node if n.name == node)
    tensor = weights[conv.input[1]]
    array = numpy_helper.to_array(tensor).copy()
    array[0] *= np.asarray(factor, array.dtype)
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    onnx.save(graph, str(folder / _final(folder)))
    return folder


def _final(folder: Path) -> str:
    import json

    return str(json.loads((folder / "bundle.json").read_text())["final"])


__all__ = ["NUDGES", "cbam_bundle", "cbam_fp16_bundle", "export_bundle", "nudged_copy", "yolo_bundle", "yolo_env"]
