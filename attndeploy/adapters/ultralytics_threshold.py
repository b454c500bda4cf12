"""The confidence threshold the detection check compares at, chosen from eager's scores alone, or why none can be.

    threshold = choose_threshold(eager_output0, layout)
    threshold.conf        # None: not decidable on these images (threshold.why says why)

Ultralytics' predict default 0.25 is taken when the eager model finds between `MIN_BOXES`
and `MAX_CANDIDATES` boxes above it with no score within `MARGIN` (relative) of it and no
NMS decision at its edge (a trained model). Random-weight models make few confident boxes
(or, rarely, too many), so the threshold then moves into the widest relative gap between
the sorted eager scores of the top `MIN_CANDIDATES`..`MAX_CANDIDATES` candidates — usually
far below 0.25: no score lies within half that gap of it, so fp32 noise cannot move a box
across it. Among the `TRIES` widest gaps the widest is taken that leaves no pair of boxes at
the edge of an NMS decision (`borderline_pairs`).

Rows (NMS in the graph, the NMS-free head, RT-DETR) bound the threshold from below: the
graph's own `conf`, and, where an image's rows are all used (`max_det` of them: a top-k
cut), that image's lowest score.

Not decidable (`conf` None), from eager alone, before any graph is looked at: no gap of at
least `MIN_GAP` (relative) among the candidates (scores tied or saturated, e.g. random
weights whose class scores are all 1.0), no candidate at all, or only thresholds that
leave pairs at the edge of an NMS decision (tied scores of overlapping boxes: which one NMS
keeps is then up to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attndeploy.adapters.ultralytics_detections import Layout, candidate_scores

PREDICT_CONF = 0.25
MIN_BOXES = 10
MIN_CANDIDATES, MAX_CANDIDATES = 10, 200
MARGIN = 1e-3     # no eager score this close (relative) to the default threshold
MIN_GAP = 1e-3    # the narrowest relative gap a threshold may sit in (its half is ~100x the fp32 noise of a score)
# NMS decisions closer than this could flip on fp32 noise. Measured (eager fp32 against its float64 run on the
# images, random-weight YOLOv8n+CBAM at 320 and 640, yolo11n at 640, yolo26n at 320): scores move by <= 3.5e-5
# (relative), box corners by <= 1e-3 px, i.e. an IoU by ~2e-4 on a 10 px box: the margins are 10-30x that.
IOU_MARGIN, SCORE_MARGIN = 3e-3, 1e-3
TRIES = 30


@dataclass(frozen=True)
class Threshold:
    """`conf` to compare at (None: not decidable), `why` in words, and the NMS decisions at its edge."""

    conf: float | None
    why: str
    borderline: int = 0


def _xyxy(xywh: torch.Tensor) -> torch.Tensor:
    xy, half = xywh[:, :2], xywh[:, 2:4] / 2
    return torch.cat([xy - half, xy + half], 1)


def _edge_pairs(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_nms: float) -> int:
    """Same-class pairs whose IoU is within `IOU_MARGIN` of `iou_nms`, or which overlap that much with scores within
    `SCORE_MARGIN` (relative) of each other (which one NMS keeps depends on their order)."""
    from torchvision.ops import box_iou

    if len(boxes) < 2:
        return 0
    iou = box_iou(boxes, boxes)
    near_iou = (iou - iou_nms).abs() < IOU_MARGIN
    close = (scores[:, None] - scores[None, :]).abs() <= SCORE_MARGIN * scores[:, None]
    near_score = close & (iou > iou_nms - IOU_MARGIN)
    return int(((near_iou | near_score) & (classes[:, None] == classes[None, :])).triu(1).sum())


def borderline_pairs(output: torch.Tensor, layout: Layout, conf: float) -> int:
    """Pairs of candidates above `conf` at the edge of an NMS decision (see `_edge_pairs`): raw anchors before NMS,
    or the rows NMS kept in the graph (those it suppressed are not in the output: they cannot be counted). Rows
    without NMS (the NMS-free head, RT-DETR) have none. Rotated boxes are compared by their axis-aligned hull."""
    if layout.rows and not layout.nms_in_graph:
        return 0
    count = 0
    for p in output.double():
        if layout.rows:
            keep = p[:, 4] > conf
            boxes, s, c = p[keep, :4], p[keep, 4], p[keep, 5].long()
        else:
            scores, cls = p[4:4 + layout.nc].max(0)
            keep = scores > conf
            boxes, s, c = _xyxy(p[:4, keep].T), scores[keep], cls[keep]
        count += _edge_pairs(boxes, s, c, layout.nms_iou)
    return count


def _floor(output: torch.Tensor, layout: Layout) -> tuple[float, bool]:
    """(the lowest threshold the rows allow, whether that floor is a score itself: a full image's last row)."""
    if not layout.rows:
        return 0.0, False
    floor, cut = layout.graph_conf, False
    for p in output:
        scores = p[:, 4]
        if layout.max_det is not None and int((scores > layout.graph_conf).sum()) >= min(layout.max_det, len(scores)):
            floor, cut = max(floor, float(scores.min())), True
    return floor, cut


def _default_misfit(output: torch.Tensor, layout: Layout, scores: torch.Tensor, floor: float) -> str:
    """Why ultralytics' predict default does not fit eager's scores ("" when it does)."""
    above = int((scores > PREDICT_CONF).sum())
    near = float(((scores - PREDICT_CONF).abs() / PREDICT_CONF).min()) if scores.numel() else 1.0
    if PREDICT_CONF <= floor * (1 + MARGIN):
        return f"it is not above the rows' floor {floor:.4g}"
    if not MIN_BOXES <= above <= MAX_CANDIDATES:
        return f"{above} candidate(s) above it, not {MIN_BOXES}..{MAX_CANDIDATES}"
    if near <= MARGIN:
        return f"a score lies within {MARGIN:g} of it"
    flips = borderline_pairs(output, layout, PREDICT_CONF)
    return f"{flips} NMS decision(s) at its edge" if flips else ""


def _given(output: torch.Tensor, layout: Layout, scores: torch.Tensor, conf: float, strict: bool) -> Threshold:
    """The user's `conf` (the `conf` option), or why the images cannot decide at it."""
    floor, _ = _floor(output, layout)
    near = float(((scores - conf).abs() / conf).min()) if scores.numel() else 1.0
    flips = borderline_pairs(output, layout, conf)
    if conf <= floor * (1 + MARGIN):
        return Threshold(None, f"the given conf {conf:g} is not above the rows' floor {floor:.4g} (a top-k cut or the "
                               "graph's own conf)")
    if near <= MARGIN:
        return Threshold(None, f"an eager score lies within {MARGIN:g} (relative) of the given conf {conf:g}")
    if strict and flips:
        return Threshold(None, f"{flips} pair(s) of boxes above the given conf {conf:g} are at the edge of an NMS "
                               "decision", flips)
    return Threshold(conf, f"conf {conf:g} (given): {int((scores > conf).sum())} eager candidate(s) above it", flips)


def choose_threshold(output: torch.Tensor, layout: Layout, strict: bool = True, given: float | None = None) -> Threshold:
    """The threshold for eager's `output0` (B, ...) in `layout` (see the module docstring), or the user's `given` one
    where the images can decide at it; not `strict` (a reduced-precision graph, judged by agreement rates): NMS
    decisions at the edge of the widest gap are counted, not a reason to give up."""
    scores = candidate_scores(output, layout).double()
    if given is not None:
        return _given(output, layout, scores, given, strict)
    floor, cut = _floor(output, layout)
    misfit = _default_misfit(output, layout, scores, floor)
    if not misfit:
        return Threshold(PREDICT_CONF, f"conf {PREDICT_CONF} (ultralytics' predict default; no score within "
                                       f"{MARGIN:g} of it)")
    usable = scores[scores > floor] if not cut else scores[scores >= floor]
    top = usable.topk(min(MAX_CANDIDATES + 1, usable.numel())).values
    if not cut and usable.numel() <= MAX_CANDIDATES + 1:  # every candidate is in `top`: a threshold may keep them all
        top = torch.cat([top, top.new_tensor([floor])])
    if top.numel() < 2:
        return Threshold(None, f"no eager detection above {floor:.4g} on these images: nothing to compare")
    first = min(MIN_CANDIDATES, top.numel() - 1)
    upper, lower = top[first - 1:-1], top[first:]
    relative = (upper - lower) / upper.clamp_min(1e-30)
    ranked = [k for k in relative.argsort(descending=True)[:TRIES].tolist() if float(relative[k]) >= MIN_GAP]
    if not ranked:
        return Threshold(None, f"eager's top {top.numel()} scores are tied or saturated ({float(top[0]):.6g} .. "
                               f"{float(top[-1]):.6g}, no relative gap >= {MIN_GAP:g}): no threshold separates "
                               "boxes from fp32 noise")
    for k in ranked:
        conf = float(upper[k] + lower[k]) / 2
        flips = borderline_pairs(output, layout, conf)
        if flips == 0:
            above = int((scores > conf).sum())
            return Threshold(conf, f"conf {conf:.4g}: in a {float(relative[k]):.2g} relative gap between eager "
                                   f"scores, {above} candidate(s) above it (ultralytics' {PREDICT_CONF}: {misfit})")
    if not strict:
        k = ranked[0]
        conf = float(upper[k] + lower[k]) / 2
        flips = borderline_pairs(output, layout, conf)
        return Threshold(conf, f"conf {conf:.4g}: in a {float(relative[k]):.2g} relative gap between eager scores, "
                               f"{flips} pair(s) of boxes at the edge of an NMS decision", flips)
    return Threshold(None, f"each of the {len(ranked)} widest gaps between eager scores leaves pairs of overlapping "
                           f"boxes at the edge of an NMS decision (IoU within {IOU_MARGIN} of {layout.nms_iou}, or "
                           f"tied scores): which box NMS keeps is up to rounding", flips)


__all__ = ["MIN_GAP", "PREDICT_CONF", "Threshold", "borderline_pairs", "choose_threshold"]
