"""The ultralytics task check as a pure function of eager's, the graph's and eager's float64 outputs on the images.

Synthetic outputs pin the rules (rows compared directly, ties and saturation undecidable, an
ill-conditioned eager undecidable, a classifier's tied top two left out); real detectors,
built offline from YAML, show an undecidable check failing nothing through the API and
planted bugs in the exported graph still failing where the images decide.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from attndeploy.adapters.base import FAILED, PASSED, UNDECIDABLE, TaskCheck, in_batches
from attndeploy.adapters.ultralytics_detections import Layout
from attndeploy.adapters.ultralytics_task import DetectionCheck, Top1Check
from tests.detector_models import yolo_env  # noqa: F401  (fixture)

SMALL = 320
ROWS = Layout(nc=80, imgsz=(SMALL, SMALL), rows=True, graph_conf=0.25, max_det=30, nms_iou=0.7)


def _rows(count: int = 12, max_det: int = 30) -> np.ndarray:
    """(1, max_det, 6) detections as NMS in the graph gives them: boxes 40 px apart, scores 0.9 .. 0.3 (distinct,
    well apart), classes cycling through 0..3, zero rows after them."""
    out = np.zeros((1, max_det, 6), np.float32)
    for i in range(count):
        out[0, i] = [10 + 40 * (i % 7), 10 + 40 * (i // 7), 40 + 40 * (i % 7), 45 + 40 * (i // 7),
                     0.9 - 0.05 * i, i % 4]
    return out


def test_task_check_status() -> None:
    undecided = TaskCheck("detections", UNDECIDABLE, "not decidable on x: why")
    assert undecided.passed and not undecided.decided and undecided.to_dict()["status"] == "undecidable"
    assert not TaskCheck("detections", FAILED, "m").passed and TaskCheck("detections", PASSED, "m").decided
    with pytest.raises(ValueError, match="status"):
        TaskCheck("detections", "maybe", "m")


def test_rows_are_compared_directly() -> None:
    check, eager = DetectionCheck(ROWS), _rows()
    noisy = eager + np.float32(1e-6) * (eager != 0)
    result = check([eager], [noisy], "fp32", [eager])
    assert result.status == PASSED and result.details["layout"] == "rows", result.message
    moved = eager.copy()
    moved[0, 2, [0, 2]] += 3.0                                   # one box 3 px to the right: IoU about 0.8
    failed = check([eager], [moved], "fp32", [eager])
    assert failed.status == FAILED and "IoU" in failed.message, failed.message
    relabelled = eager.copy()
    relabelled[0, 1, 5] = 7.0
    assert check([eager], [relabelled], "fp32").status == FAILED
    rescored = eager.copy()
    rescored[0, 0, 4] *= 1.01
    assert "score" in check([eager], [rescored], "fp32").message


def test_saturated_or_tied_scores_are_undecidable() -> None:
    raw = np.zeros((1, 84, 400), np.float32)
    raw[0, 0] = np.arange(400) * 50.0
    raw[0, 2:4] = 10.0
    raw[0, 4, :300] = 1.0                                        # sigmoid saturated: 300 anchors tied at 1.0
    result = DetectionCheck(Layout(nc=80, imgsz=(SMALL, SMALL)))([raw], [raw], "fp32")
    assert result.status == UNDECIDABLE and result.passed, result.message
    assert "tied or saturated" in result.message and "the tensor verdict stands" in result.message
    empty = DetectionCheck(ROWS)([np.zeros((1, 30, 6), np.float32)], [_rows()], "fp32")
    assert empty.status == UNDECIDABLE and "no eager detection" in empty.message


def test_eager_disagreeing_with_its_float64_run_is_undecidable() -> None:
    eager = _rows()
    double = eager.copy()
    double[0, 3, :4] += 5.0                                      # fp32 and float64 pick different boxes
    result = DetectionCheck(ROWS)([eager], [eager], "fp32", [double])
    assert result.status == UNDECIDABLE and "float64" in result.message and "ill-conditioned" in result.message


def _raw_boxes(first: float, second: float) -> np.ndarray:
    """(1, 84, 400) raw anchors: 4 well-separated boxes scoring 0.9 .. 0.6 in class 0 and `first`/`second`
    (class 1 / class 2) at anchor 0; every other score 0."""
    raw = np.zeros((1, 84, 400), np.float32)
    for i, score in enumerate((0.9, 0.8, 0.7, 0.6)):
        raw[0, :4, 10 * i] = [40 + 70 * i, 40, 30, 30]
        raw[0, 4, 10 * i] = score
    raw[0, 4, 0], raw[0, 5, 0], raw[0, 6, 0] = 0.0, first, second
    return raw


def test_classes_tied_within_the_fp32_limit_are_undecidable_and_clear_ones_fail() -> None:
    check = DetectionCheck(Layout(nc=80, imgsz=(SMALL, SMALL)))
    tied = _raw_boxes(0.9, 0.9 - 2e-7)                          # 2e-7 apart: within 2 x 32 ulps of 1
    swapped = tied.copy()
    swapped[0, [5, 6], 0] = swapped[0, [6, 5], 0]
    result = check([tied], [swapped], "fp32", [tied.astype(np.float64)])
    assert result.status == UNDECIDABLE and "top two eager class scores" in result.message, result.message
    clear = _raw_boxes(0.9, 0.5)                                  # a planted class swap the images decide
    planted = clear.copy()
    planted[0, [5, 6], 0] = planted[0, [6, 5], 0]
    failed = check([clear], [planted], "fp32", [clear.astype(np.float64)])
    assert failed.status == FAILED and "classes differ" in failed.message, failed.message


def test_a_tiny_score_may_move_by_the_fp32_limit() -> None:
    """A score of 6e-5 moved by 7e-8 (onnxruntime's Sigmoid): 1.1e-3 relative, far inside the rule's limit on a
    probability channel (32 ulps of 1, 3.8e-6); moved by 20 % (1.2e-5) it fails."""
    check = DetectionCheck(Layout(nc=80, imgsz=(SMALL, SMALL)))
    eager = _raw_boxes(0.0, 0.0)
    eager[0, 4, :40] *= 1e-4                                      # scores 9e-5 .. 6e-5
    rounded, wrong = eager.copy(), eager.copy()
    rounded[0, 4, 30] += 7e-8
    wrong[0, 4, 30] *= 1.2
    assert check([eager], [rounded], "fp32", [eager.astype(np.float64)]).status == PASSED
    assert "relative" in check([eager], [rounded], "fp32").message                # no float64 run: 1e-3 relative
    assert check([eager], [wrong], "fp32", [eager.astype(np.float64)]).status == FAILED


def test_a_given_conf_is_used_where_the_images_decide_at_it() -> None:
    free = Layout(nc=80, imgsz=(SMALL, SMALL), rows=True, max_det=30)     # NMS-free rows: no conf in the graph
    eager = _rows()                                                         # scores 0.9, 0.85 ... 0.35
    at = DetectionCheck(free, conf=0.62)([eager], [eager], "fp32")
    assert at.status == PASSED and at.details["conf"] == 0.62 and "(given)" in at.message
    assert at.details["detections"] == [6]                                 # 0.9 .. 0.65 above it
    near = DetectionCheck(free, conf=0.6)([eager], [eager], "fp32")         # 0.6 is a score itself
    assert near.status == UNDECIDABLE and "within" in near.message


def test_top1_leaves_out_tied_images() -> None:
    check = Top1Check((SMALL, SMALL))
    clear = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], np.float32)
    assert check([clear], [clear], "fp32").status == PASSED
    assert check([clear], [clear[:, ::-1].copy()], "fp32").status == FAILED
    tied = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]], np.float32)
    assert check([tied], [tied[:, ::-1].copy()], "fp32").status == UNDECIDABLE


def test_in_batches_runs_a_fixed_batch_in_chunks() -> None:
    seen: list[int] = []

    def run(x: np.ndarray) -> list[np.ndarray]:
        seen.append(len(x))
        return [x * 2, x.sum(axis=(1, 2, 3))]

    x = np.arange(3 * 2 * 2 * 2, dtype=np.float32).reshape(3, 2, 2, 2)
    twice, sums = in_batches(run, x, 2)
    assert seen == [2, 2] and np.array_equal(twice, x * 2) and np.array_equal(sums, x.sum(axis=(1, 2, 3)))
    assert [len(a) for a in in_batches(run, x, None)] == [3, 3] and seen[-1] == 3


# ---- real detectors (offline, from YAML)

def _flat(outputs: Any) -> list[np.ndarray]:
    if isinstance(outputs, (tuple, list)):
        return [a for o in outputs for a in _flat(o)]
    return [outputs.detach().float().numpy()]


@pytest.fixture(scope="module")
def v8(yolo_env: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # noqa: F811
    """YOLOv8n+CBAM with confident boxes, exported at 320 (raw outputs), its check and eager's outputs on the images."""
    import attndeploy
    from attndeploy.adapters import adapter_for
    from attndeploy.settings import ExportSettings
    from tests.detector_models import build, confident_

    folder = tmp_path_factory.mktemp("task")
    model = confident_(build("yolov8n-cbam", folder))
    res = attndeploy.export(copy.deepcopy(model), None, folder / "v8.onnx", imgsz=SMALL)
    twin = copy.deepcopy(model)
    prepared = adapter_for(twin).prepare(twin, ExportSettings.create(twin, None, None, imgsz=SMALL))
    images = prepared.task_inputs
    with torch.no_grad():
        eager = _flat(prepared.model(torch.from_numpy(images.copy())))
        eager64 = _flat(copy.deepcopy(prepared.model).double()(torch.from_numpy(images).double()))
    return {"res": res, "check": prepared.task_check, "images": images, "eager": eager, "eager64": eager64}


def _planted(path: Path, channels: dict[int, float]) -> bytes:
    """The graph at `path` with `output0` (N, 84, A) multiplied per channel by `channels` (others by 1)."""
    model = onnx.load(str(path))
    producer = next(n for n in model.graph.node if "output0" in n.output)
    producer.output[list(producer.output).index("output0")] = "output0_clean"
    factor = np.ones((1, 84, 1), np.float32)
    for channel, scale in channels.items():
        factor[0, channel] = scale
    model.graph.initializer.append(numpy_helper.from_array(factor, "planted_factor"))
    model.graph.node.append(helper.make_node("Mul", ["output0_clean", "planted_factor"], ["output0"], name="/planted"))
    return model.SerializeToString()


def _graph(onnx_bytes: bytes, images: np.ndarray) -> list[np.ndarray]:
    from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(onnx_bytes) as runner:
        return [np.asarray(v) for v in runner.infer({"images": images.copy()}).values()]


@pytest.mark.detector
def test_planted_bugs_fail_where_the_images_decide(v8: dict[str, Any]) -> None:
    res, check, images = v8["res"], v8["check"], v8["images"]
    assert res.passed and res.tasks["fp32"].status == PASSED, res.tasks["fp32"].message
    clean = check(v8["eager"], _graph(res.onnx_path.read_bytes(), images), "fp32", v8["eager64"])
    assert clean.status == PASSED and clean.details["conf"] is not None, clean.message
    shifted = check(v8["eager"], _graph(_planted(res.onnx_path, {0: 1.02}), images), "fp32", v8["eager64"])
    assert shifted.status == FAILED and "IoU" in shifted.message, shifted.message


@pytest.mark.detector
def test_score_compression_warning(v8: dict[str, Any]) -> None:
    """Scores scaled by 0.7 in the graph (a Mul on the 80 class channels): boxes eager keeps above ultralytics'
    0.25 fall under it, and the reduced-precision report says so; the clean graph gets no such warning."""
    check, images, eager = v8["check"], v8["images"], v8["eager"]
    clean = check(eager, _graph(v8["res"].onnx_path.read_bytes(), images), "int8", v8["eager64"])
    assert clean.status == PASSED and clean.details["warnings"] == [], clean.message
    assert clean.details["score_shift"]["matched"] > 0 and clean.details["kept_by_stride"]
    squeezed = _graph(_planted(v8["res"].onnx_path, {c: 0.7 for c in range(4, 84)}), images)
    result = check(eager, squeezed, "int8", v8["eager64"])
    warnings = result.details["warnings"]
    assert len(warnings) == 1 and "scores compressed" in warnings[0] and "0.25" in warnings[0], result.message
    assert abs(result.details["score_shift"]["mean"] + 0.3) < 0.02           # every matched score moved by -30%
    assert "WARNING: scores compressed" in result.message
    kept = result.details["kept_by_class"]
    assert sum(k for k, _ in kept.values()) < sum(t for _, t in kept.values())   # boxes lost at the same conf


@pytest.mark.detector
def test_saturated_scores_are_undecidable_through_the_api(yolo_env: Path, tmp_path: Path) -> None:  # noqa: F811
    """yolo26n whose class logits are scaled x1000 (scores saturate at exactly 1.0): the check cannot decide, says
    why, and the export passes on its tensor verdict (it used to fail: "0 eager detections vs 1 in the graph")."""
    import attndeploy
    from tests.detector_models import build

    model = build("yolo26n", tmp_path)
    with torch.no_grad():
        for level in model.model[-1].cv3:
            level[-1].weight.mul_(1e3)
            level[-1].bias.zero_()
    res = attndeploy.export(model, None, tmp_path / "sat.onnx", imgsz=SMALL)
    task = res.tasks["fp32"]
    assert task.status == UNDECIDABLE and "tied or saturated" in task.message, task.message
    assert res.passed and all(v.passed for v in res.parities.values())
    assert res.to_dict()["tasks"]["fp32"]["status"] == "undecidable"
