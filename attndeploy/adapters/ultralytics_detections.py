"""Detections from an ultralytics graph's first output, whatever its layout, at a confidence threshold.

    layout = Layout(nc=80, imgsz=(640, 640), strides=(8, 16, 32))        # raw anchors, NMS here
    dets = detections(torch.from_numpy(output0), layout, conf=0.25)       # one Dets per image

Layouts of `output0` (B = images):
- raw (nms=None): (B, 4 + nc + extra, A), boxes xywh in pixels, the anchors of the head's
  levels one after the other (stride 8 first); detections come from ultralytics' own
  `non_max_suppression` (class-aware, IoU `nms_iou`, max_det 300, no time limit), which also
  gives each box's anchor, hence its stride;
- rows (nms=True: NMS in the graph; nms=False: the one-to-one head): (B, K, 6 + extra) =
  x1, y1, x2, y2, score, class [+ extra] (OBB: x, y, w, h, score, class, angle); a
  detection is a row above the threshold;
- RT-DETR rows: (B, K, 6) = cx, cy, w, h in 0..1, score, class: turned into xyxy pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IOU_NMS = 0.7      # ultralytics' predict default
MAX_DET = 300


@dataclass(frozen=True)
class Layout:
    """How to read `output0`: `rows` (detection rows) or raw anchors; `normalized_xywh` (RT-DETR rows);
    `rotated` (OBB); `strides` of the head's levels (raw: an anchor's stride); `graph_conf`: the score
    threshold already applied in the graph (NMS in the graph), 0 if none; `max_det`: the rows' count
    (a top-k cut), None for raw."""

    nc: int
    imgsz: tuple[int, int]
    rows: bool = False
    normalized_xywh: bool = False
    rotated: bool = False
    strides: tuple[int, ...] = ()
    graph_conf: float = 0.0
    max_det: int | None = None
    nms_iou: float = IOU_NMS

    @property
    def nms_in_graph(self) -> bool:
        return self.rows and self.graph_conf > 0


@dataclass(frozen=True)
class Dets:
    """One image's detections: `boxes` (n, 6 + extra) as ultralytics returns them (xyxy, score, class, extra;
    OBB: xywh, score, class, angle) and `anchors` (n,) the anchor each came from (-1: unknown, rows)."""

    boxes: torch.Tensor
    anchors: torch.Tensor

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def scores(self) -> torch.Tensor:
        return self.boxes[:, 4]

    @property
    def classes(self) -> torch.Tensor:
        return self.boxes[:, 5].long()


def _xywh_to_xyxy(xywh: torch.Tensor) -> torch.Tensor:
    xy, half = xywh[..., :2], xywh[..., 2:4] / 2
    return torch.cat([xy - half, xy + half], -1)


def _rows(output: torch.Tensor, layout: Layout) -> torch.Tensor:
    """(B, K, 6 + extra) rows with xyxy pixel boxes (RT-DETR's normalized xywh scaled by imgsz (H, W))."""
    if not layout.normalized_xywh:
        return output
    h, w = layout.imgsz
    scale = output.new_tensor([w, h, w, h])
    return torch.cat([_xywh_to_xyxy(output[..., :4] * scale), output[..., 4:]], -1)


def candidate_scores(output: torch.Tensor, layout: Layout) -> torch.Tensor:
    """The scores a threshold competes with, all images together (1-D): each anchor's best class score (raw),
    or each row's score."""
    if layout.rows:
        return output[..., 4].flatten()
    return output[:, 4:4 + layout.nc].amax(1).flatten()


def detections(output: torch.Tensor, layout: Layout, conf: float) -> list[Dets]:
    """Per image, the detections of `output` (see the module docstring) scoring above `conf`."""
    if layout.rows:
        found = []
        for rows in _rows(output, layout).float():
            keep = rows[:, 4] > conf
            found.append(Dets(rows[keep], torch.full((int(keep.sum()),), -1, dtype=torch.long)))
        return found
    from ultralytics.utils.nms import non_max_suppression

    boxes, kept = non_max_suppression(output, conf_thres=conf, iou_thres=layout.nms_iou, nc=layout.nc,
                                      max_det=MAX_DET, rotated=layout.rotated, max_time_img=1e6, return_idxs=True)
    return [Dets(b, k.view(-1).long()) for b, k in zip(boxes, kept)]


def anchor_strides(layout: Layout) -> torch.Tensor:
    """The stride of each raw anchor (A,) at `layout.imgsz`: the head's levels one after the other."""
    h, w = layout.imgsz
    return torch.cat([torch.full(((h // s) * (w // s),), s, dtype=torch.long) for s in layout.strides])


__all__ = ["Dets", "IOU_NMS", "Layout", "anchor_strides", "candidate_scores", "detections"]
