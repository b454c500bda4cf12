"""Matching one image's eager detections with a graph's: same class, IoU, score.

    problem, worst_iou = compare_detections(eager_boxes, graph_boxes)     # fp32: all must match
    pairs = greedy_matches(eager_boxes, graph_boxes, min_iou=0.5)         # reduced precision

Boxes are (n, 6 + extra) rows as ultralytics' NMS returns them: x1, y1, x2, y2, score,
class (OBB: x, y, w, h, score, class, ..., angle, compared by probabilistic IoU).
"""

from __future__ import annotations

import torch

MIN_IOU = 0.99          # fp32: a matched box's IoU
SCORE_RTOL = 1e-3       # fp32: a matched box's score, relative (fp32 noise moves a score by ~1e-6 relative)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor, rotated: bool = False) -> torch.Tensor:
    """(n, m) IoU of detections `a` (n, 6+) and `b` (m, 6+): xyxy boxes, or xywh + angle (last column) for OBB."""
    if rotated:
        from ultralytics.utils.metrics import batch_probiou

        return batch_probiou(torch.cat([a[:, :4], a[:, -1:]], 1), torch.cat([b[:, :4], b[:, -1:]], 1))
    from torchvision.ops import box_iou

    return box_iou(a[:, :4].double(), b[:, :4].double())


def greedy_matches(eager: torch.Tensor, graph: torch.Tensor, min_iou: float,
                   rotated: bool = False) -> list[tuple[int, int, float]]:
    """(eager index, graph index or -1, IoU) per eager detection, by descending eager score: each takes its best
    untaken graph box of the same class when that IoU reaches `min_iou` (else graph index -1, its best IoU)."""
    if len(eager) == 0 or len(graph) == 0:
        return [(i, -1, -1.0) for i in range(len(eager))]
    iou = pairwise_iou(eager, graph, rotated)
    iou[eager[:, 5].long()[:, None] != graph[:, 5].long()[None, :]] = -1.0
    taken = torch.zeros(len(graph), dtype=torch.bool)
    matches = []
    for i in eager[:, 4].argsort(descending=True).tolist():
        row = iou[i].masked_fill(taken, -1.0)
        j = int(row.argmax())
        hit = bool(row[j] >= min_iou)
        taken[j] = hit
        matches.append((i, j if hit else -1, float(row[j])))
    return matches


def _box(row: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in row[:4].tolist()) + f"] (class {int(row[5])}, score {float(row[4]):.4g})"


def compare_detections(eager: torch.Tensor, graph: torch.Tensor, rotated: bool = False,
                       score_atol: float = 0.0) -> tuple[str | None, float]:
    """(why they differ or None, the smallest matched IoU) for one image's detections (n, 6+) each: the same count
    and classes, each eager box matched at IoU >= `MIN_IOU` with a score within `SCORE_RTOL` (relative) or
    `score_atol` (absolute: the fp32 rule's limit on scores, which a tiny score's rounding can exceed)."""
    if len(eager) != len(graph):
        return f"{len(eager)} eager detections vs {len(graph)} in the graph", 0.0
    if len(eager) == 0:
        return None, 1.0
    if sorted(eager[:, 5].long().tolist()) != sorted(graph[:, 5].long().tolist()):
        return "the classes differ", 0.0
    worst = 1.0
    for i, j, iou in greedy_matches(eager, graph, MIN_IOU, rotated):
        worst = min(worst, iou)
        if j < 0:
            return f"eager box {_box(eager[i])} best matches IoU {iou:.4f} < {MIN_IOU}", worst
        moved = abs(float(graph[j, 4] - eager[i, 4]))
        shift = moved / max(float(eager[i, 4]), 1e-12)
        if shift > SCORE_RTOL and moved > score_atol:
            beyond = f" and {moved:.2g} > {score_atol:.2g} absolute" if score_atol else ""
            return f"eager box {_box(eager[i])} has score {float(graph[j, 4]):.6g} in the graph ({shift:.2g} " \
                   f"relative > {SCORE_RTOL:g}{beyond})", worst
    return None, worst


def matched_pairs(eager: torch.Tensor, graph: torch.Tensor, min_iou: float, rotated: bool = False) -> int:
    """How many eager detections (n, 6+) match a graph detection of their class at IoU >= `min_iou`."""
    return sum(j >= 0 for _, j, _ in greedy_matches(eager, graph, min_iou, rotated))


__all__ = ["MIN_IOU", "SCORE_RTOL", "compare_detections", "greedy_matches", "matched_pairs", "pairwise_iou"]
