"""Task-level parity for ultralytics models: eager vs the graph on the images ultralytics ships.

    images, check = task_checker(net, "detect", (640, 640), post)     # (2, 3, 640, 640), a DetectionCheck
    result = check(eager_outputs, graph_outputs, "fp32", eager64_outputs)  # each side's outputs on `images`

Both sides see the same batch, `letterboxed_images(imgsz)`: `bus.jpg` and `zidane.jpg` from
`ultralytics/assets`, letterboxed as ultralytics' predictor does (`LetterBox(auto=False)`,
grey 114 padding, BGR -> RGB, / 255), (2, 3, H, W). The check is a pure function of eager's
outputs, the graph's and eager's float64 outputs there (the truth runs eager once).

Detections (`ultralytics_detections`): raw outputs through ultralytics' own NMS, or, for a
graph with NMS in it or an NMS-free head, its rows directly (eager's output already is
detections). The threshold is chosen from eager's scores alone (`ultralytics_threshold`);
where none can separate boxes from fp32 noise (tied or saturated scores), the check is
"undecidable": it fails nothing and says why; the tensor verdict stands. So is a model
whose own float64 run does not give its fp32 detections under the fp32 rule (an
ill-conditioned model: a random RT-DETR picks different queries). An fp32 graph:
per image the same count and classes, every eager box matched to a graph box of its class
with IoU >= 0.99 and a score within 1e-3 relative or the fp32 rule's limit on the score
channels (raw outputs, with eager's float64 run: onnxruntime's Sigmoid is off by ~1e-7
absolute, more than 1e-3 of a score of 1e-5); where they differ only in the classes of
detections whose top two eager class scores lie within twice that limit of each other (a
random-weight head's near-uniform classes), the classes are not decidable either. A reduced-precision graph (fp16, int8)
moves boxes and scores a little by design, so a box near the threshold may cross it: boxes
match by class at IoU >= 0.5, >= 90% of eager's boxes must be among the graph's at the
threshold lowered by the precision's score slack (2% fp16, 15% int8), and >= 90% of the
graph's at the threshold raised by it among eager's; the report adds the score shift, the
boxes kept per class and per stride, and a warning on score compression
(`ultralytics_shift`). Classifiers: the same top-1 class per image (images whose top two
eager probabilities are tied within 1e-3 are left out; all of them: undecidable).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attndeploy.adapters.base import FAILED, PASSED, UNDECIDABLE, TaskCheck
from attndeploy.adapters.ultralytics_detections import IOU_NMS, Dets, Layout, detections
from attndeploy.adapters.ultralytics_match import compare_detections, matched_pairs
from attndeploy.adapters.ultralytics_nms import EMBEDDED, PostProcess
from attndeploy.adapters.ultralytics_shift import explain_shift
from attndeploy.adapters.ultralytics_threshold import MIN_GAP, choose_threshold
from attndeploy.verdict.rule import distances

IMAGES = ("bus.jpg", "zidane.jpg")
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


class ImageCheck:
    """A check on `letterboxed_images(imgsz)`: calling it compares eager's outputs, the graph's and eager's float64
    ones there (a `TaskChecker`)."""

    name = "task"

    def __init__(self, imgsz: Sequence[int]) -> None:
        self.imgsz = (int(imgsz[0]), int(imgsz[1]))

    def images(self) -> np.ndarray:
        return letterboxed_images(self.imgsz)

    @property
    def where(self) -> str:
        return f"{' and '.join(IMAGES)} letterboxed to {self.imgsz[0]}x{self.imgsz[1]}"

    def __call__(self, eager: Sequence[np.ndarray], graph: Sequence[np.ndarray], precision: str,
                 eager64: Sequence[np.ndarray] | None = None) -> TaskCheck:
        return self.compare(eager, graph, precision, eager64)

    def compare(self, eager: Sequence[np.ndarray], graph: Sequence[np.ndarray], precision: str,
                eager64: Sequence[np.ndarray] | None = None) -> TaskCheck:
        raise TypeError(f"{type(self).__name__} must define compare")


def _found(dets_a: list[Dets], dets_b: list[Dets], rotated: bool) -> tuple[int, int]:
    """(boxes of `dets_a` matched in `dets_b` at IoU >= `REDUCED_IOU`, boxes of `dets_a`), over the images."""
    return (sum(matched_pairs(a.boxes, b.boxes, REDUCED_IOU, rotated) for a, b in zip(dets_a, dets_b)),
            sum(len(a) for a in dets_a))


def _fp32_limits(ref: torch.Tensor, eager64: Sequence[np.ndarray] | None, layout: Layout) -> np.ndarray | None:
    """(nc,) the fp32 rule's limit per class-score channel of a raw output on these images (`verdict.rule`: eager
    fp32 against its float64 run); None for rows or without a float64 run."""
    if eager64 is None or layout.rows:
        return None
    classes = slice(4, 4 + layout.nc)
    scores = ref[:, classes].double().numpy()
    return distances(np.asarray(eager64[0], np.float64)[:, classes], scores, scores).limit


def _untie(dets: list[Dets], ref: torch.Tensor, limits: np.ndarray, nc: int) -> tuple[list[Dets], int]:
    """(`dets` with class -1 wherever eager's top two class scores at the detection's anchor lie within twice the
    limit of each other, how many such detections)."""
    top2 = ref[:, 4:4 + nc].double().topk(2, dim=1)                   # values, indices: (B, 2, A)
    allowed = 2 * torch.from_numpy(limits)[top2.indices].amax(1)       # (B, A)
    tied = (top2.values[:, 0] - top2.values[:, 1]) <= allowed
    untied, count = [], 0
    for b, found in enumerate(dets):
        mask = tied[b][found.anchors.clamp(min=0)] & (found.anchors >= 0)
        boxes = found.boxes.clone()
        boxes[mask, 5] = -1
        untied.append(Dets(boxes, found.anchors))
        count += int(mask.sum())
    return untied, count


class DetectionCheck(ImageCheck):
    """Detections of eager and a graph on the images (see the module docstring)."""

    name = "detections"

    def __init__(self, layout: Layout, postprocess: dict[str, Any] | None = None, conf: float | None = None) -> None:
        super().__init__(layout.imgsz)
        self.layout, self.postprocess, self.conf = layout, dict(postprocess or {}), conf

    def _differ(self, dets_a: list[Dets], dets_b: list[Dets], score_atol: float = 0.0) -> tuple[str | None, float]:
        """(the first image's difference under the fp32 rule, or None; the smallest matched IoU)."""
        worst, failure = 1.0, None
        for name, a, b in zip(IMAGES, dets_a, dets_b):
            problem, iou = compare_detections(a.boxes, b.boxes, self.layout.rotated, score_atol)
            worst = min(worst, iou)
            if problem and failure is None:
                failure = f"{name}: {problem}"
        return failure, worst

    def _undecidable(self, why: str, details: dict[str, Any]) -> TaskCheck:
        details["undecidable"] = why
        return TaskCheck(self.name, UNDECIDABLE, f"not decidable on {self.where}: {why}; the tensor verdict stands",
                         details)

    def compare(self, eager: Sequence[np.ndarray], graph: Sequence[np.ndarray], precision: str,
                eager64: Sequence[np.ndarray] | None = None) -> TaskCheck:
        layout = self.layout
        ref, got = (torch.from_numpy(np.asarray(side[0], dtype=np.float32)) for side in (eager, graph))
        threshold = choose_threshold(ref, layout, strict=precision == "fp32", given=self.conf)
        details: dict[str, Any] = {"images": list(IMAGES), "imgsz": list(self.imgsz),
                                   "layout": "rows" if layout.rows else "raw", "conf": threshold.conf,
                                   **({"graph_postprocess": self.postprocess} if self.postprocess else {})}
        if threshold.conf is None:
            return self._undecidable(threshold.why, details)
        conf = threshold.conf
        dets_ref = detections(ref, layout, conf)
        if eager64 is not None:  # eager fp32 must itself agree with its float64 run: else fp32 cannot be judged here
            own, _ = self._differ(detections(torch.from_numpy(np.asarray(eager64[0], np.float32)), layout, conf),
                                  dets_ref)
            if own:
                return self._undecidable(f"eager's own float64 run differs from its fp32 one at conf {conf:.4g} "
                                         f"({own.replace('eager', 'float64').replace('the graph', 'fp32')}): the "
                                         "detections are ill-conditioned on these images", details)
        if precision != "fp32":
            return self._reduced(ref, got, dets_ref, conf, precision, details, threshold.why)
        dets_got = detections(got, layout, conf)
        limits = _fp32_limits(ref, eager64, layout)
        atol = float(limits.max()) if limits is not None else 0.0
        failure, worst = self._differ(dets_ref, dets_got, atol)
        counts = [len(d) for d in dets_ref]
        details.update(iou_nms=layout.nms_iou, min_iou=worst, detections=counts,
                       graph_detections=[len(d) for d in dets_got], float64_checked=eager64 is not None)
        if failure and limits is not None:
            (ref_untied, tied), (got_untied, _) = (_untie(d, ref, limits, layout.nc) for d in (dets_ref, dets_got))
            if tied and self._differ(ref_untied, got_untied, atol)[0] is None:
                return self._undecidable(f"{failure}, only in the classes of {tied} detection(s) whose top two eager "
                                         "class scores lie within twice the fp32 rule's limit of each other",
                                         details)
        if failure:
            return TaskCheck(self.name, FAILED, f"detections differ on {failure} ({self.where}; {threshold.why})",
                             details)
        return TaskCheck(self.name, PASSED, f"same detections on {self.where}: {'+'.join(map(str, counts))} boxes, "
                         f"same classes, min IoU {worst:.5f} ({threshold.why})", details)

    def _reduced(self, ref: torch.Tensor, got: torch.Tensor, dets_ref: list[Dets], conf: float, precision: str,
                 details: dict[str, Any], why: str) -> TaskCheck:
        layout, slack = self.layout, SCORE_SLACK.get(precision, SCORE_SLACK["int8"])
        kept, found = _found(dets_ref, detections(got, layout, conf * (1 - slack)), layout.rotated)
        extra, real = _found(detections(got, layout, conf * (1 + slack)), dets_ref, layout.rotated)
        recall, precision_ = kept / max(found, 1), extra / max(real, 1)
        passed = recall >= REDUCED_AGREEMENT and precision_ >= REDUCED_AGREEMENT
        shift = explain_shift(ref, got, layout, conf, precision)
        details.update(recall=recall, precision=precision_, **shift)   # precision: the graph's boxes found in eager's
        message = (f"{kept} of {found} eager boxes found in the {precision} graph (threshold -{slack:.0%}), {extra} "
                   f"of {real} of its boxes (threshold +{slack:.0%}) in eager's: needs >= {REDUCED_AGREEMENT:.0%} "
                   f"each, on {self.where} ({why}); {shift['summary']}")
        if shift["warnings"]:
            message += "; WARNING: " + "; ".join(shift["warnings"])
        return TaskCheck(self.name, PASSED if passed else FAILED, message, details)


class Top1Check(ImageCheck):
    """Classifiers: the same top-1 class per image in eager and in the graph."""

    name = "top1"

    def compare(self, eager: Sequence[np.ndarray], graph: Sequence[np.ndarray], precision: str,
                eager64: Sequence[np.ndarray] | None = None) -> TaskCheck:
        ref, got = np.asarray(eager[0], dtype=np.float64), np.asarray(graph[0], dtype=np.float64)
        top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else np.concatenate([ref * 0, ref], 1)
        clear = (top2[:, 1] - top2[:, 0]) > MIN_GAP * np.abs(top2[:, 1])
        top_ref, top_got = ref.argmax(1).tolist(), got.argmax(1).tolist()
        if eager64 is not None:  # an image where eager's float64 top-1 differs is ill-conditioned: left out too
            clear &= np.asarray(eager64[0]).argmax(1) == ref.argmax(1)
        details = {"images": list(IMAGES), "imgsz": list(self.imgsz), "top1": top_ref, "graph_top1": top_got,
                   "tied": [name for name, ok in zip(IMAGES, clear) if not ok]}
        if not clear.any():
            return TaskCheck(self.name, UNDECIDABLE, f"not decidable on {self.where}: eager's top two classes are "
                             f"tied within {MIN_GAP:g} (or its float64 run's top-1 differs) on every image; the "
                             "tensor verdict stands", details)
        same = all(a == b for a, b, ok in zip(top_ref, top_got, clear) if ok)
        verdict = "same top-1 class" if same else "top-1 classes differ"
        left_out = f" ({', '.join(details['tied'])} left out: top two tied or float64 differs)" if details["tied"] else ""
        return TaskCheck(self.name, PASSED if same else FAILED, f"{verdict} on {' and '.join(IMAGES)}: eager "
                         f"{top_ref}, graph {top_got}{left_out}", details)


def detection_layout(net: Any, task: str, imgsz: Sequence[int], post: PostProcess) -> Layout:
    """How the prepared `net` (head in export mode) lays out `output0` under `post` (see `ultralytics_detections`)."""
    head = net.model[-1]
    rtdetr = hasattr(head, "num_queries")
    embedded = post.mode == EMBEDDED
    return Layout(nc=int(getattr(head, "nc", 0) or len(net.names)), imgsz=(int(imgsz[0]), int(imgsz[1])),
                  rows=post.rows, normalized_xywh=rtdetr, rotated=task == "obb",
                  strides=tuple(int(s) for s in net.stride.tolist()),
                  graph_conf=float(post.conf or 0.0) if embedded else 0.0,
                  max_det=int(head.max_det) if post.rows else None,
                  nms_iou=float(post.iou or IOU_NMS) if embedded else IOU_NMS)


def task_checker(net: Any, task: str, imgsz: Sequence[int], post: PostProcess | None = None,
                 conf: float | None = None) -> tuple[np.ndarray, ImageCheck] | None:
    """(the task inputs: `IMAGES` letterboxed to `imgsz`, the check) for the prepared ultralytics `net` of `task`
    ("detect", "segment", "pose", "obb", "classify"); None for others. `conf`: the detection check's threshold
    (the `conf` option, where NMS is not in the graph), else chosen from eager's scores."""
    check: ImageCheck
    if task in ("detect", "segment", "pose", "obb"):
        post = post or PostProcess()
        check = DetectionCheck(detection_layout(net, task, imgsz, post), post.to_dict(), conf)
    elif task == "classify":
        check = Top1Check(imgsz)
    else:
        return None
    return check.images(), check


__all__ = ["DetectionCheck", "IMAGES", "ImageCheck", "Top1Check", "detection_layout", "letterboxed_images",
           "task_checker"]
