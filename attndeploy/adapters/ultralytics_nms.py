"""What an ultralytics graph does after its head: outputs for external NMS, NMS in the graph, or the NMS-free head.

    post = choose_postprocess(net, settings, task)   # before fuse: it picks the head branch fuse keeps
    model = wrap_for_nms(net, post, settings)        # after the heads are in export mode

`settings.nms`, with ultralytics' meaning (`Exporter.__call__`, `export(format="onnx", nms=...)`):

- None (the default, CLI: no `--nms`): the one-to-many head, `output0` (N, 4 + nc [+ extra], A)
  for the user's NMS; a YOLO26/YOLOv10 head's NMS-free branch is off, as ultralytics' `nms=None`.
- True (`--nms embed`), detect/segment/pose/obb on a YOLO head: ultralytics' own `NMSModel`
  around the model, boxes xyxy (`head.xyxy`): `output0` (N, max_det, 6 [+ extra]) = x1, y1, x2,
  y2, score, class (rows past the detections are zeros), `conf` (0.25), `iou` (0.7), `max_det`
  (300), `agnostic_nms` as ultralytics names them. A YOLO26/YOLOv10 model uses its one-to-many
  head, as ultralytics does. `NMSModel` loops over the images of the batch it is traced with, so
  the graph's batch is that one (`batch`, 1 unless given): the wrapper refuses another in eager,
  and the shape rule fixes it.
- False (`--nms free`): the NMS-free one-to-one head (`end2end`): top-`max_det` rows (N, max_det,
  6 [+ extra]) in the same layout, no NMS anywhere. A model without such a head is a
  `UsageError`: a consumer built for (N, 300, 6) rows must not silently receive raw anchors
  (ultralytics only warns and exports the one-to-many outputs). RT-DETR is NMS-free as it is:
  its rows (N, max_det, 6) = cx, cy, w, h (0..1), score, class.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from attndeploy.errors import UsageError, require
from attndeploy.settings import ExportSettings

EXTERNAL, EMBEDDED, FREE = "external", "embedded", "free"
NMS_TASKS = ("detect", "segment", "pose", "obb")
DEFAULT_MAX_DET, DEFAULT_CONF, DEFAULT_IOU = 300, 0.25, 0.7   # ultralytics' export and predict defaults


@dataclass(frozen=True)
class PostProcess:
    """What the graph does after the head, as the report states it.

    `mode`: "external" (raw outputs), "embedded" (NMS in the graph), "free" (NMS-free one-to-one
    head, or RT-DETR's decoder); `rows`: `output0` holds detection rows (N, max_det, 6 [+ extra])
    rather than raw anchors; `conf`, `iou`: the in-graph NMS thresholds (embedded only);
    `batch`: the batch the in-graph NMS loop is traced for (embedded only).
    """

    mode: str = EXTERNAL
    rows: bool = False
    max_det: int | None = None
    conf: float | None = None
    iou: float | None = None
    agnostic_nms: bool = False
    batch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        if self.mode == EMBEDDED:
            return (f"NMS in the graph (ultralytics' NMSModel): conf {self.conf:g}, IoU {self.iou:g}, max_det "
                    f"{self.max_det}, {'class-agnostic' if self.agnostic_nms else 'per class'}, batch fixed at "
                    f"{self.batch} (the NMS loop is unrolled per image)")
        if self.mode == FREE:
            return (f"NMS-free head: top {self.max_det} rows{' over all classes' if self.agnostic_nms else ''}, "
                    "no NMS needed")
        return "raw outputs for external NMS (ultralytics' default, nms=None)"


def _has_one2one(head: Any) -> bool:
    return getattr(head, "one2one_cv2", None) is not None


def _is_rtdetr(head: Any) -> bool:
    from ultralytics.nn.modules.head import RTDETRDecoder

    return isinstance(head, RTDETRDecoder)


def choose_postprocess(net: Any, settings: ExportSettings, task: str) -> tuple[PostProcess, list[str]]:
    """The post-processing `settings.nms` asks for on `net` (before `fuse`, which keeps the branch chosen here:
    `net.end2end`), and notes; a `UsageError` where the model cannot do it."""
    from ultralytics.nn.modules.head import Detect

    head = net.model[-1]
    max_det = settings.max_det or DEFAULT_MAX_DET
    rtdetr = _is_rtdetr(head)
    if settings.nms is None:
        if hasattr(net, "end2end"):
            net.end2end = False  # ultralytics' nms=None: one-to-many outputs for external NMS
        if rtdetr:
            return PostProcess(FREE, True, max_det), ["RT-DETR is NMS-free: output0 rows need no NMS"]
        return PostProcess(), []
    where = f"{type(net).__name__} with a {type(head).__name__} head (task {task!r})"
    if settings.nms is False:
        if rtdetr:
            return PostProcess(FREE, True, max_det), ["nms=False: RT-DETR is NMS-free as it is"]
        if not _has_one2one(head):
            raise UsageError("nms=False ('free') needs an NMS-free one-to-one head", "a YOLO26 or YOLOv10 model "
                             "(end2end), or nms=True to put NMS in the graph, or nms=None for external NMS", where)
        net.end2end = True
        return PostProcess(FREE, True, max_det, agnostic_nms=settings.agnostic_nms), \
            ["nms=False: the one-to-one (NMS-free) head, as ultralytics exports end2end models"]
    require(task in NMS_TASKS and isinstance(head, Detect), "nms=True ('embed') needs a YOLO detection head",
            f"task in {', '.join(NMS_TASKS)} with a Detect-family head"
            + (" (RT-DETR is NMS-free: use nms=False or leave nms unset)" if rtdetr else ""), where)
    notes = []
    if _has_one2one(head):
        net.end2end = False
        notes.append("nms=True on an end2end model: its one-to-many head with NMS in the graph, as ultralytics does")
    post = PostProcess(EMBEDDED, True, max_det, DEFAULT_CONF if settings.conf is None else settings.conf,
                       settings.iou or DEFAULT_IOU, settings.agnostic_nms, settings.batch or 1)
    return post, notes


def head_options(head: Any, post: PostProcess, available: int) -> None:
    """The head attributes ultralytics' exporter sets from the post-processing (`max_det` clamped to `available`)."""
    head.max_det = min(post.max_det or DEFAULT_MAX_DET, available)
    head.agnostic_nms = post.agnostic_nms
    head.xyxy = post.mode == EMBEDDED   # NMSModel expects xyxy boxes


@functools.cache
def _embedded_nms() -> type:
    from ultralytics.engine.exporter import NMSModel

    class EmbeddedNMS(NMSModel):
        """Ultralytics' `NMSModel` at one batch size: images (N, C, H, W) -> (N, max_det, 6 [+ extra]) [, protos].

        Its loop over the images is unrolled when traced, so a graph traced at batch N is right
        at batch N only: eager refuses another batch, which makes the pipeline's shape rule fix it.
        """

        def forward(self, x: torch.Tensor) -> Any:
            batch = self.args.batch
            if not torch.jit.is_tracing() and x.shape[0] != batch:
                raise ValueError(f"NMS in the graph is unrolled for batch {batch}: expected {batch} images, got "
                                 f"{x.shape[0]} (export with batch={x.shape[0]} for that size)")
            return super().forward(x)

    return EmbeddedNMS


def wrap_for_nms(net: nn.Module, post: PostProcess, settings: ExportSettings) -> nn.Module:
    """`net` itself, or inside ultralytics' `NMSModel` (module paths `model.<layer>`) for NMS in the graph."""
    if post.mode != EMBEDDED:
        return net
    args = SimpleNamespace(format="onnx", dynamic=settings.dynamic, batch=post.batch or 1, conf=post.conf,
                           iou=post.iou, max_det=post.max_det, agnostic_nms=post.agnostic_nms, opset=settings.opset)
    wrapper: nn.Module = _embedded_nms()(net, args)
    return wrapper


def output_layout(post: PostProcess, task: str, nc: int, extra: int) -> tuple[dict[str, tuple[int, ...]], str]:
    """(dynamic dims of `output0`, a description of it) for rows; raw outputs are described by the caller."""
    what = "x1, y1, x2, y2, score, class" if task != "obb" else "x, y, w, h, score, class, angle"
    if extra and task != "obb":
        what += f" + {extra} task values"
    batch_axis: tuple[int, ...] = () if post.mode == EMBEDDED else (0,)   # embedded: the batch is fixed
    return {"output0": batch_axis}, f"(batch, {post.max_det} detections, {what}) of {nc} classes"


__all__ = ["DEFAULT_CONF", "DEFAULT_IOU", "DEFAULT_MAX_DET", "EMBEDDED", "EXTERNAL", "FREE",
           "PostProcess", "choose_postprocess", "head_options", "output_layout", "wrap_for_nms"]
