"""Detection-level parity for ultralytics models: eager vs the graph on the images ultralytics ships, after NMS.

    check = task_checker("detect", (640, 640))
    result = check(eager_model, onnx_bytes, "images")   # -> TaskCheck("detections", passed, message, details)

Both sides see the same batch: `bus.jpg` and `zidane.jpg` from `ultralytics/assets`,
letterboxed to `imgsz` as ultralytics' predictor does (`LetterBox(auto=False)`, grey 114
padding, BGR -> RGB, / 255), shape (2, 3, H, W). `output0` of each side, (2, 4 + nc [+ extra], A),
goes through ultralytics' own `non_max_suppression` (IoU 0.7, max_det 300, class-aware,
no time limit), and the detections must agree image by image. An fp32 graph: the same
count, the same classes, and every eager box matched to a graph box of its class with
IoU >= 0.99 (probabilistic IoU for oriented boxes). A reduced-precision graph (fp16, int8)
moves boxes and scores a little by design, so a box near the threshold may cross it: boxes
match by class at IoU >= 0.5, >= 90% of the eager boxes must be among the graph's at the
threshold lowered by the precision's score slack (2% fp16, 15% int8), and >= 90% of the
graph's boxes at the threshold raised by it among the eager ones. Classifiers: the same
top-1 class per image.

The confidence threshold is ultralytics' predict default 0.25 when the eager model finds
between `MIN_BOXES` and `MAX_CANDIDATES` boxes above it with no score within `MARGIN` of
it (a trained model). Random-weight models make few confident boxes (or, rarely, too
many), so the threshold then moves into the widest gap between the sorted eager scores
of the top `MIN_CANDIDATES`..`MAX_CANDIDATES` anchors (relative to the scores) — usually
far below 0.25: no score lies within half that gap of it, so fp32 noise cannot move a box
across it. Among such gaps the widest is taken whose candidate boxes hold no same-class
pair at the edge of an NMS decision (IoU within 0.01 of 0.7, or overlapping boxes with
scores within 1e-3 of each other): a random model's dense boxes make such pairs common, and
noise flips them. The message says which threshold was used and how many such pairs remain.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attndeploy.adapters.base import TaskCheck, TaskChecker

IMAGES = ("bus.jpg", "zidane.jpg")
PREDICT_CONF = 0.25
MIN_BOXES = 10
MIN_CANDIDATES, MAX_CANDIDATES = 10, 200
MARGIN = 1e-3  # no eager score this close to the default threshold
IOU_MARGIN, SCORE_MARGIN = 0.01, 1e-3   # NMS decisions closer than this could flip on fp32 noise
TRIES = 30
IOU_NMS = 0.7
MIN_IOU = 0.99
REDUCED_IOU = 0.5
SCORE_SLACK = {"fp16": 0.02, "int8": 0.15}   # how far a reduced-precision score may move relative to the threshold
REDUCED_AGREEMENT = 0.9


@functools.lru_cache(maxsize=4)
def letterboxed_images(imgsz: tuple[int, int]) -> np.ndarray:
    """`IMAGES` letterboxed to `imgsz` (H, W) as ultralytics' predictor does: (2, 3, H, W) float32 RGB in [0, 1]."""
    import cv2
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import ASSETS

    boxer = LetterBox(new_shape=imgsz, auto=False)  # exactly imgsz (a stride matters only with auto=True)
    batch = []
    for name in IMAGES:
        image = cv2.imread(str(Path(ASSETS) / name))
        if image is None:
            raise FileNotFoundError(f"ultralytics' sample image {name} is missing from {ASSETS}")
        boxed: Any = boxer(image=image)  # (H, W, 3) BGR uint8
        batch.append(boxed[..., ::-1].transpose(2, 0, 1))
    return (np.ascontiguousarray(np.stack(batch)).astype(np.float32) / 255.0)


def _first(outputs: Any) -> torch.Tensor:
    while isinstance(outputs, (tuple, list)):
        outputs = outputs[0]
    return outputs


def _xyxy(xywh: torch.Tensor) -> torch.Tensor:
    xy, half = xywh[:, :2], xywh[:, 2:4] / 2
    return torch.cat([xy - half, xy + half], 1)


def borderline_pairs(pred: torch.Tensor, nc: int, conf: float) -> int:
    """Same-class pairs among the boxes above `conf` whose NMS outcome fp32 noise could flip.

    A pair is borderline when its IoU is within `IOU_MARGIN` of the NMS threshold, or when it
    overlaps that much and the two scores are within `SCORE_MARGIN` (relative) of each other
    (which one is kept depends on their order). Boxes as (B, 4 + nc + extra, A), xywh.
    """
    from torchvision.ops import box_iou

    count = 0
    for p in pred.double():
        scores, cls = p[4:4 + nc].max(0)
        keep = scores > conf
        if int(keep.sum()) < 2:
            continue
        boxes, s, c = _xyxy(p[:4, keep].T), scores[keep], cls[keep]
        iou = box_iou(boxes, boxes)
        near_iou = (iou - IOU_NMS).abs() < IOU_MARGIN
        near_score = ((s[:, None] - s[None, :]).abs() <= SCORE_MARGIN * s[:, None]) & (iou > IOU_NMS - IOU_MARGIN)
        count += int(((near_iou | near_score) & (c[:, None] == c[None, :])).triu(1).sum())
    return count


def choose_conf(pred: torch.Tensor, nc: int) -> tuple[float, str]:
    """A confidence threshold for `pred` (B, 4 + nc + extra, A) and how it was chosen (see the module docstring)."""
    scores = pred[:, 4:4 + nc].amax(1).flatten().double()
    above = int((scores > PREDICT_CONF).sum())
    near = float((scores - PREDICT_CONF).abs().min()) if scores.numel() else 1.0
    if MIN_BOXES <= above <= MAX_CANDIDATES and near > MARGIN and borderline_pairs(pred, nc, PREDICT_CONF) == 0:
        return PREDICT_CONF, f"conf {PREDICT_CONF} (ultralytics' predict default; no score within {MARGIN:g} of it)"
    top = scores.topk(min(MAX_CANDIDATES + 1, scores.numel())).values
    if top.numel() <= MIN_CANDIDATES:
        return float(top[-1]) / 2, f"conf {float(top[-1]) / 2:.4g} (below every score: only {top.numel()} anchors)"
    upper, lower = top[MIN_CANDIDATES - 1:-1], top[MIN_CANDIDATES:]
    relative = (upper - lower) / upper.clamp_min(1e-30)
    tried = 0
    for k in relative.argsort(descending=True)[:TRIES].tolist():
        conf = float(upper[k] + lower[k]) / 2
        tried += 1
        if borderline_pairs(pred, nc, conf) == 0:
            break
    else:
        k = int(relative.argmax())
        conf = float(upper[k] + lower[k]) / 2
    flips = borderline_pairs(pred, nc, conf)
    return conf, (f"conf {conf:.4g}: random weights put {above} box(es) above ultralytics' {PREDICT_CONF}, so the "
                  f"threshold sits in a {float(relative[k]):.2g} relative gap between eager scores (top "
                  f"{MIN_CANDIDATES + k}), where {flips} same-class pair(s) are within fp32 noise of an NMS flip")


def _nms(pred: torch.Tensor, conf: float, nc: int, rotated: bool) -> list[torch.Tensor]:
    from ultralytics.utils.nms import non_max_suppression

    return non_max_suppression(pred, conf_thres=conf, iou_thres=IOU_NMS, nc=nc, max_det=300, rotated=rotated,
                               max_time_img=1e6)


def _iou(a: torch.Tensor, b: torch.Tensor, rotated: bool) -> torch.Tensor:
    """Pairwise IoU of detections `a` (n, 6+) and `b` (m, 6+): xyxy boxes, or xywh + angle (last column) for OBB."""
    if rotated:
        from ultralytics.utils.metrics import batch_probiou

        return batch_probiou(torch.cat([a[:, :4], a[:, -1:]], 1), torch.cat([b[:, :4], b[:, -1:]], 1))
    from torchvision.ops import box_iou

    return box_iou(a[:, :4].double(), b[:, :4].double())


def greedy_matches(eager: torch.Tensor, graph: torch.Tensor, min_iou: float,
                   rotated: bool = False) -> list[tuple[int, float]]:
    """(eager index, IoU with its best untaken graph box of the same class, -1 if none) per eager detection (n, 6+),
    by descending eager score; a graph box is taken when that IoU reaches `min_iou`."""
    if len(eager) == 0 or len(graph) == 0:
        return [(i, -1.0) for i in range(len(eager))]
    iou = _iou(eager, graph, rotated)
    iou[eager[:, 5].long()[:, None] != graph[:, 5].long()[None, :]] = -1.0
    taken = torch.zeros(len(graph), dtype=torch.bool)
    matches = []
    for i in eager[:, 4].argsort(descending=True).tolist():
        row = iou[i].masked_fill(taken, -1.0)
        j = int(row.argmax())
        taken[j] = bool(row[j] >= min_iou)
        matches.append((i, float(row[j])))
    return matches


def compare_detections(eager: torch.Tensor, graph: torch.Tensor, rotated: bool = False) -> tuple[str | None, float]:
    """(why they differ or None, the smallest matched IoU) for one image's detections (n, 6+) each."""
    if len(eager) != len(graph):
        return f"{len(eager)} eager detections vs {len(graph)} in the graph", 0.0
    if len(eager) == 0:
        return None, 1.0
    if sorted(eager[:, 5].long().tolist()) != sorted(graph[:, 5].long().tolist()):
        return "the classes differ", 0.0
    worst = 1.0
    for i, iou in greedy_matches(eager, graph, MIN_IOU, rotated):
        worst = min(worst, iou)
        if iou < MIN_IOU:
            box = ", ".join(f"{v:.1f}" for v in eager[i, :4].tolist())
            return f"eager box [{box}] (class {int(eager[i, 5])}) best matches IoU {iou:.4f} < {MIN_IOU}", worst
    return None, worst


def matched_pairs(eager: torch.Tensor, graph: torch.Tensor, rotated: bool = False) -> int:
    """How many eager detections (n, 6+) match a graph detection of their class at IoU >= `REDUCED_IOU`, greedily
    by eager score."""
    return sum(iou >= REDUCED_IOU for _, iou in greedy_matches(eager, graph, REDUCED_IOU, rotated))


def _found(dets_a: list[torch.Tensor], dets_b: list[torch.Tensor], rotated: bool) -> tuple[int, int]:
    """(boxes of `dets_a` matched in `dets_b`, boxes of `dets_a`), over the images."""
    return (sum(matched_pairs(a, b, rotated) for a, b in zip(dets_a, dets_b)), sum(len(a) for a in dets_a))


def _reduced_verdict(dets_ref: list[torch.Tensor], got: torch.Tensor, conf: float, nc: int, precision: str,
                     rotated: bool) -> tuple[bool, str, dict[str, float]]:
    """(passed, what agreed, figures) for a reduced-precision graph's `got` against eager's detections at `conf`
    (see the module docstring)."""
    slack = SCORE_SLACK.get(precision, SCORE_SLACK["int8"])
    kept, found = _found(dets_ref, _nms(got, conf * (1 - slack), nc, rotated), rotated)
    extra, real = _found(_nms(got, conf * (1 + slack), nc, rotated), dets_ref, rotated)
    recall, precision_ = kept / max(found, 1), extra / max(real, 1)
    passed = recall >= REDUCED_AGREEMENT and precision_ >= REDUCED_AGREEMENT
    return passed, (f"{kept} of {found} eager boxes found in the {precision} graph (threshold -{slack:.0%}), "
                    f"{extra} of {real} of its boxes (threshold +{slack:.0%}) in eager's: needs >= "
                    f"{REDUCED_AGREEMENT:.0%} each"), {"recall": recall, "precision": precision_}


def check_detections(ref: torch.Tensor, got: torch.Tensor, precision: str = "fp32", *, nc: int,
                     imgsz: tuple[int, int], rotated: bool = False) -> TaskCheck:
    """Detections of eager's first output `ref` and the graph's `got` on `IMAGES`, each (2, 4 + nc + extra, A) (see
    the module docstring)."""
    conf, why = choose_conf(ref, nc)
    dets_ref = _nms(ref, conf, nc, rotated)
    where = f"{' and '.join(IMAGES)} letterboxed to {imgsz[0]}x{imgsz[1]}"
    if precision != "fp32":
        passed, agreed, figures = _reduced_verdict(dets_ref, got, conf, nc, precision, rotated)
        details = {"images": list(IMAGES), "imgsz": list(imgsz), "conf": conf, "precision": precision, **figures}
        return TaskCheck("detections", passed, f"{agreed} on {where} ({why})", details)
    dets_got = _nms(got, conf, nc, rotated)
    counts, worst, failure = [], 1.0, None
    for name, a, b in zip(IMAGES, dets_ref, dets_got):
        problem, iou = compare_detections(a, b, rotated)
        counts.append(len(a))
        worst = min(worst, iou)
        if problem and failure is None:
            failure = f"{name}: {problem}"
    details = {"images": list(IMAGES), "imgsz": list(imgsz), "conf": conf, "iou_nms": IOU_NMS, "min_iou": worst,
               "detections": counts, "graph_detections": [len(d) for d in dets_got]}
    if failure:
        return TaskCheck("detections", False, f"detections differ on {failure} ({where}; {why})", details)
    return TaskCheck("detections", True, f"same detections on {where}: {'+'.join(map(str, counts))} boxes, same "
                     f"classes, min IoU {worst:.5f} ({why}; NMS IoU {IOU_NMS})", details)


def check_top1(ref: torch.Tensor, got: torch.Tensor, precision: str = "fp32") -> TaskCheck:
    """Classifiers: the same top-1 class on `IMAGES` in eager (`ref`, (2, classes)) and in the graph (`got`)."""
    top_ref, top_got = ref.argmax(1).tolist(), got.argmax(1).tolist()
    details = {"images": list(IMAGES), "top1": top_ref, "graph_top1": top_got}
    passed = top_ref == top_got
    verdict = "same top-1 class" if passed else "top-1 classes differ"
    return TaskCheck("top1", passed, f"{verdict} on {' and '.join(IMAGES)}: eager {top_ref}, graph {top_got}", details)


class _Compare:
    """A `TaskChecker`: eager's and the graph's outputs on `IMAGES` (first output of each) -> `TaskCheck`."""

    def __init__(self, task: str, imgsz: tuple[int, int], nc: int) -> None:
        self.task, self.imgsz, self.nc = task, imgsz, nc

    def __call__(self, eager: list[np.ndarray], graph: list[np.ndarray], precision: str) -> TaskCheck:
        ref, got = torch.from_numpy(np.asarray(eager[0])).float(), torch.from_numpy(np.asarray(graph[0])).float()
        if self.task == "classify":
            return check_top1(ref, got, precision)
        return check_detections(ref, got, precision, nc=self.nc, imgsz=self.imgsz, rotated=self.task == "obb")


def task_checker(task: str, imgsz: Sequence[int], nc: int) -> tuple[np.ndarray, TaskChecker] | None:
    """(the task inputs: `IMAGES` letterboxed to `imgsz`, the check) for an ultralytics `task` ("detect",
    "segment", "pose", "obb", "classify"); None for others."""
    size = (int(imgsz[0]), int(imgsz[1]))
    if task not in ("detect", "segment", "pose", "obb", "classify"):
        return None
    return letterboxed_images(size), _Compare(task, size, nc)


__all__ = ["borderline_pairs", "check_detections", "check_top1", "choose_conf", "compare_detections",
           "greedy_matches", "letterboxed_images", "matched_pairs", "task_checker"]
