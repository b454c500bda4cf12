"""What reduced precision (fp16, INT8) did to a detector's detections: score shift, boxes kept, score compression.

    shift = explain_shift(eager_output0, graph_output0, layout, conf=0.01, precision="int8")
    shift["score_shift"]["mean"], shift["kept_by_class"], shift["kept_by_stride"], shift["warnings"]

The field's most reported INT8 failures are confidence compression (scores shrink, boxes
fall under the deployment threshold) and whole classes or heads going missing, so:

- `score_shift`: over the eager boxes at `conf` matched to a graph box of their class (IoU
  >= `MATCH_IOU`, the graph's boxes taken down to `WIDE` x `conf` so that a shrunken score
  still matches), the mean and the worst relative score change (graph - eager) / eager;
- `kept_by_class` / `kept_by_stride`: of eager's boxes at `conf`, how many the graph still
  has at `conf` (same class, IoU >= `MATCH_IOU`), per class and per head scale. A raw
  output's anchor index tells its stride (the head's levels come one after the other); rows
  (NMS in the graph, the NMS-free head, RT-DETR) carry no anchor index, so `kept_by_stride`
  is None there and the report says so;
- `warnings`: scores compressed enough that ultralytics' default conf 0.25 drops boxes
  eager keeps there (the graph's scores lower on average, and some eager box above 0.25
  is under it, or gone, in the graph).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from attndeploy.adapters.ultralytics_detections import Dets, Layout, anchor_strides, detections
from attndeploy.adapters.ultralytics_match import greedy_matches
from attndeploy.adapters.ultralytics_threshold import PREDICT_CONF

MATCH_IOU = 0.5
WIDE = 0.5


def _pairs(eager: list[Dets], graph: list[Dets], rotated: bool) -> list[tuple[Dets, int, Dets, int]]:
    """(eager image dets, eager index, graph image dets, graph index or -1) per eager box, all images."""
    return [(e, i, g, j) for e, g in zip(eager, graph) for i, j, _ in greedy_matches(e.boxes, g.boxes, MATCH_IOU,
                                                                                      rotated)]


def _shift(eager: list[Dets], graph: list[Dets], rotated: bool) -> dict[str, Any]:
    shifts = [float(g.scores[j] - e.scores[i]) / max(float(e.scores[i]), 1e-12)
              for e, i, g, j in _pairs(eager, graph, rotated) if j >= 0]
    if not shifts:
        return {"matched": 0, "mean": None, "worst": None}
    worst = max(shifts, key=abs)
    return {"matched": len(shifts), "mean": sum(shifts) / len(shifts), "worst": worst}


def _kept(eager: list[Dets], graph: list[Dets], layout: Layout) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """({class: [kept, total]}, {stride: [kept, total]}) of eager's boxes found in the graph."""
    by_class: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    by_stride: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    strides = anchor_strides(layout) if not layout.rows and layout.strides else None
    for e, i, _, j in _pairs(eager, graph, layout.rotated):
        for table, key in ((by_class, int(e.classes[i])),
                           *(((by_stride, int(strides[e.anchors[i]])),) if strides is not None else ())):
            table[key][0] += int(j >= 0)
            table[key][1] += 1
    return dict(sorted(by_class.items())), dict(sorted(by_stride.items()))


def _compression(eager: torch.Tensor, graph: torch.Tensor, layout: Layout, mean: float | None,
                 precision: str) -> list[str]:
    """A warning when ultralytics' default conf would drop, in the graph, boxes eager keeps, and scores shrank."""
    if layout.graph_conf > PREDICT_CONF:
        return []
    kept_eager = detections(eager, layout, PREDICT_CONF)
    kept_graph = detections(graph, layout, PREDICT_CONF)
    pairs = _pairs(kept_eager, kept_graph, layout.rotated)
    dropped = sum(j < 0 for *_, j in pairs)
    if not dropped or mean is None or mean >= 0:
        return []
    return [f"scores compressed in the {precision} graph (mean shift {mean:+.1%}): {dropped} of {len(pairs)} eager "
            f"boxes above ultralytics' default conf {PREDICT_CONF} fall under it, so a deployment at that threshold "
            "loses them: lower conf for this graph or keep the head's last layers float"]


def _rate(table: dict[int, list[int]]) -> str:
    return ", ".join(f"{k}: {kept}/{total}" for k, (kept, total) in table.items())


def explain_shift(eager: torch.Tensor, graph: torch.Tensor, layout: Layout, conf: float,
                  precision: str) -> dict[str, Any]:
    """The score shift, the boxes kept per class and per stride, and compression warnings (see the module
    docstring) for eager's and a reduced-precision graph's `output0` at `conf`."""
    at_conf = detections(eager, layout, conf)
    shift = _shift(at_conf, detections(graph, layout, max(conf * WIDE, layout.graph_conf)), layout.rotated)
    by_class, by_stride = _kept(at_conf, detections(graph, layout, conf), layout)
    kept = sum(k for k, _ in by_class.values()), sum(t for _, t in by_class.values())
    summary = f"{kept[0]}/{kept[1]} eager boxes kept at conf {conf:.4g}"
    if shift["matched"]:
        summary += f"; score shift mean {shift['mean']:+.2%}, worst {shift['worst']:+.2%}"
    summary += f"; kept by class {{{_rate(by_class)}}}" if by_class else ""
    if layout.rows:
        summary += "; by stride: n/a (rows carry no anchor index)"
    elif by_stride:
        summary += f"; kept by stride {{{_rate(by_stride)}}}"
    return {"score_shift": shift, "kept_by_class": by_class, "kept_by_stride": None if layout.rows else by_stride,
            "summary": summary, "warnings": _compression(eager, graph, layout, shift["mean"], precision)}


__all__ = ["MATCH_IOU", "explain_shift"]
